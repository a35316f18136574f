"""Big tables: a generator that fills a database the way years of business would, and a benchmark of the hot
paths on it against the same paths on a nearly empty database, in the same run.

    uv run python -m benchmarks --only big_tables                  # 1,000,000 customers (a few minutes)
    uv run python -m benchmarks.big_tables DATABASE_URL [CUSTOMERS]  # only fill a database (its owner's URL)

Each generated customer has one paid payment with its two audit rows and idempotency key, a 30-day `pro`
entitlement, and an `llm_tokens` credit account with one lot and LEDGER_PER_CUSTOMER ledger entries (a grant,
then consumes, each with its running totals) and the last consume's idempotency key: at 1,000,000
customers that is 1,000,000 payments, 2,000,000 audit rows and 10,000,000 ledger entries. One more
customer, `cus_deep`, has DEEP_HISTORY payments, for paging deep into a history.

Rows are written by set-based SQL as a superuser with triggers off (session_replication_role = replica),
so they must be, and are, what the code and the triggers would have written: the ledger's running totals
follow each account's entries in id order and end at the account.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from benchmarks.credits import grant
from benchmarks.entitlements import seed_entitlement
from benchmarks.harness import Measurement, ScratchDatabase, alternate, scratch_database
from server import credits, entitlements, payments
from server.config import Settings
from server.errors import ConfigurationError
from server.services import Services, open_services
from server.tenancy import DEFAULT_TENANT, local_caller

CUSTOMERS = 1_000_000
LEDGER_PER_CUSTOMER = 10
DEEP_HISTORY = 10_000
DEEP_CUSTOMER = "cus_deep"
WITHIN = 1.2
"""Each hot path on the big database stays within this factor of its speed on the nearly empty one."""

_PAYMENTS = """
INSERT INTO payments (id, tenant_id, customer_id, product_id, amount_minor, currency, grants, status, provider,
                      provider_payment_id, created_at, updated_at, charged_at, verified_at)
SELECT 'pay_g' || n, 'default', 'cus_g' || n, 'pro_monthly', 2000, 'USD',
       '[{"feature": "pro", "days": 30}, {"feature": "llm_tokens", "credits": 1000}]'::jsonb, 'succeeded',
       'sandbox', 'pi_g' || n, at, at, at, at
  FROM generate_series(1, $1::int) n, LATERAL (SELECT now() - make_interval(secs => ($1 - n) * 30) AS at) t
"""
_AUDIT = """
INSERT INTO payment_audit (tenant_id, payment_id, actor, from_status, to_status, created_at)
SELECT p.tenant_id, p.id, 'agent', s.from_status, s.to_status, p.created_at
  FROM payments p, (VALUES (NULL, 'created', 1), ('created', 'succeeded', 2)) s (from_status, to_status, step)
 WHERE p.id LIKE $1
 ORDER BY p.id, s.step
"""
_IDEMPOTENCY = """
INSERT INTO idempotency_keys (tenant_id, customer_id, idempotency_key, request, payment_id, created_at)
SELECT tenant_id, customer_id, 'charge-' || id, '{}'::jsonb, id, created_at FROM payments WHERE id LIKE $1
"""
_ENTITLEMENTS = """
INSERT INTO entitlements (tenant_id, customer_id, feature, payment_id, starts_at, expires_at, created_at)
SELECT 'default', 'cus_g' || n, 'pro', 'pay_g' || n, now() - interval '1 day' * (n % 60),
       now() - interval '1 day' * (n % 60) + interval '30 days', now()
  FROM generate_series(1, $1::int) n
"""
_ACCOUNTS = """
INSERT INTO credit_accounts (tenant_id, customer_id, feature, granted, used, reserved, next_expiry_at)
SELECT 'default', 'cus_g' || n, 'llm_tokens', 1000, $2::int - 1, 0, now() + interval '364 days'
  FROM generate_series(1, $1::int) n
"""  # next_expiry_at: never later than the lot's end (written below, in 365 days), as the triggers would have it
_LOTS = """
INSERT INTO credit_lots (id, tenant_id, customer_id, feature, payment_id, quantity, used, expires_at)
OVERRIDING SYSTEM VALUE
SELECT n, 'default', 'cus_g' || n, 'llm_tokens', 'pay_g' || n, 1000, $2::int - 1, now() + interval '365 days'
  FROM generate_series(1, $1::int) n
"""
_LEDGER = """
INSERT INTO credit_ledger (id, tenant_id, customer_id, feature, kind, granted_delta, used_delta, lot_id, payment_id,
                           note, granted_after, used_after, reserved_after)
OVERRIDING SYSTEM VALUE
SELECT (n - 1) * $2 + k + 1, 'default', 'cus_g' || n, 'llm_tokens',
       CASE WHEN k = 0 THEN 'grant' ELSE 'consume' END,
       CASE WHEN k = 0 THEN 1000 ELSE 0 END, CASE WHEN k = 0 THEN 0 ELSE 1 END,
       CASE WHEN k = 0 THEN n END, CASE WHEN k = 0 THEN 'pay_g' || n END,
       CASE WHEN k = 0 THEN NULL ELSE 'idempotency_key ''g' || n || '-' || k || '''' END,
       1000, k, 0
  FROM generate_series(1, $1::int) n, generate_series(0, $2::int - 1) k
"""
_OPERATIONS = """
INSERT INTO credit_operations (tenant_id, customer_id, idempotency_key, kind, request, result, ledger_id)
SELECT 'default', 'cus_g' || n, 'g' || n || '-' || ($2 - 1), 'consume',
       '{"feature": "llm_tokens", "quantity": 1}'::jsonb, '{}'::jsonb, n * $2
  FROM generate_series(1, $1::int) n
"""
_DEEP_PAYMENTS = """
INSERT INTO payments (id, tenant_id, customer_id, product_id, amount_minor, currency, status, provider,
                      provider_payment_id, created_at, updated_at, charged_at, verified_at)
SELECT 'pay_deep' || n, 'default', $2, 'pro_monthly', 2000, 'USD', 'succeeded', 'sandbox', 'pi_deep' || n, at, at,
       at, at
  FROM generate_series(1, $1::int) n, LATERAL (SELECT now() - make_interval(secs => ($1 - n) * 3600) AS at) t
"""
_IDENTITIES = ("payment_audit", "entitlements", "credit_lots", "credit_ledger")


async def generate(owner_url: str, customers: int, *, say: Callable[[str], None] = print) -> None:
    """Fill the (migrated) database at `owner_url` with `customers` generated customers and cus_deep."""
    conn = await asyncpg.connect(owner_url, command_timeout=None)
    try:
        if not await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"):
            raise ConfigurationError("The generator writes with triggers off, which needs a superuser's URL.")
        await conn.execute("SET session_replication_role = replica")
        steps: list[tuple[str, str, tuple[object, ...]]] = [
            ("payments", _PAYMENTS, (customers,)),
            ("audit rows", _AUDIT, ("pay\\_g%",)),
            ("idempotency keys", _IDEMPOTENCY, ("pay\\_g%",)),
            ("entitlements", _ENTITLEMENTS, (customers,)),
            ("credit accounts", _ACCOUNTS, (customers, LEDGER_PER_CUSTOMER)),
            ("credit lots", _LOTS, (customers, LEDGER_PER_CUSTOMER)),
            ("credit ledger entries", _LEDGER, (customers, LEDGER_PER_CUSTOMER)),
            ("credit operations", _OPERATIONS, (customers, LEDGER_PER_CUSTOMER)),
            (f"{DEEP_CUSTOMER}'s payments", _DEEP_PAYMENTS, (DEEP_HISTORY, DEEP_CUSTOMER)),
            (f"{DEEP_CUSTOMER}'s audit rows", _AUDIT, ("pay\\_deep%",)),
        ]
        for what, sql, args in steps:
            started = time.perf_counter()
            status = await conn.execute(sql, *args)
            say(f"  {what}: {int(status.split()[-1]):,} rows in {time.perf_counter() - started:.0f} s")
        await conn.execute("RESET session_replication_role")
        for table in _IDENTITIES:  # the next row the code writes continues after the generated ones
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT coalesce(max(id), 1) FROM {table}))"
            )
        started = time.perf_counter()
        await conn.execute("VACUUM ANALYZE")
        say(f"  vacuum and analyze in {time.perf_counter() - started:.0f} s")
    finally:
        await conn.close()


@dataclass(frozen=True)
class Row:
    operation: str
    big: Measurement
    empty: Measurement


async def compare(rounds: int, operations: int, concurrency: int, customers: int) -> list[Row]:
    """Each hot path on a database of `customers` generated customers against a nearly empty one (only what
    the benchmark itself touches), alternating rounds between the two."""
    async with scratch_database() as big, scratch_database() as empty:
        print(f"generating {customers:,} customers…", flush=True)
        started = time.perf_counter()
        await generate(big.owner_url, customers)
        await generate(empty.owner_url, 0, say=lambda _: None)
        print(f"  generated in {time.perf_counter() - started:.0f} s", flush=True)
        async with _hot_paths(big) as on_big, _hot_paths(empty) as on_empty:
            rows = []
            for name in on_big:
                ours, theirs = await alternate(rounds, operations, concurrency, on_big[name], on_empty[name])
                rows.append(Row(name, ours, theirs))
            return rows


@asynccontextmanager
async def _hot_paths(database: ScratchDatabase) -> AsyncIterator[dict[str, Callable[[int], Awaitable[object]]]]:
    """The service calls measured, over services open on `database`."""
    await seed_entitlement(database.owner_url)
    settings = Settings(_env_file=None, database_url=database.server_url)
    async with open_services(settings) as services:
        await grant(services.pool, "bench", 10_000_000)
        caller = local_caller(DEFAULT_TENANT)
        deep_cursor = await _cursor_deep_in_history(services)
        yield {
            "check_entitlement": lambda n: entitlements.check(services, caller, "bench", "pro", 1),
            "get_payment": lambda n: payments.details(services, caller, "pay_bench0"),
            f"list_payments deep in {DEEP_CUSTOMER}'s": lambda n: payments.page(
                services, caller, DEEP_CUSTOMER, limit=100, cursor=deep_cursor
            ),
            "consume_credits": lambda n: credits.consume(services, caller, "bench", "llm_tokens", 1, f"b{n}"),
        }


async def _cursor_deep_in_history(services: Services) -> str:
    """The cursor of the last-but-one page of cus_deep's payments, 100 a page, found by paging there."""
    caller = local_caller(DEFAULT_TENANT)
    cursor = None
    for _ in range(DEEP_HISTORY // 100 - 1):
        cursor = (await payments.page(services, caller, DEEP_CUSTOMER, limit=100, cursor=cursor)).next_cursor
    assert cursor is not None
    return cursor


if __name__ == "__main__":
    asyncio.run(generate(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else CUSTOMERS))
