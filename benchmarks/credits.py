"""consume_credits (idempotent, ledgered, drawn from lots, expiry let act, checked against the ledger at commit)
against a raw guarded UPDATE of a plain balance (`UPDATE … SET remaining = remaining - $1 WHERE remaining >= $1`),
in this process, both on one account each (every operation contends for that row, as a busy customer's would)."""

from __future__ import annotations

import os

import asyncpg

from benchmarks.harness import CpuProbe, Measurement, ScratchDatabase, alternate
from db import payments
from db.payments import NewPayment
from db.pool import transaction
from server import credits
from server.config import Settings
from server.ledger import credit_moves
from server.services import open_services
from server.tenancy import DEFAULT_TENANT, local_caller

FEATURE = "llm_tokens"
"""A metered feature of the default catalog: consume refuses features not sold as credits."""
GUARDED_UPDATE = "UPDATE bench_balances SET remaining = remaining - $2 WHERE customer_id = $1 AND remaining >= $2"


async def consume(
    database: ScratchDatabase, rounds: int, operations: int, concurrency: int
) -> tuple[Measurement, Measurement]:
    settings = Settings(_env_file=None, database_url=database.server_url)
    caller = local_caller(DEFAULT_TENANT)
    async with open_services(settings) as services:
        await grant(services.pool, "bench", rounds * operations * 2)
        raw_pool = await _raw_account(database.owner_url, rounds * operations * 2)
        probe = CpuProbe({"this process": os.getpid()})  # both sides run here, as in an application
        try:
            return await alternate(
                rounds,
                operations,
                concurrency,
                lambda n: credits.consume(services, caller, "bench", FEATURE, 1, f"k{n}"),
                lambda n: raw_pool.execute(GUARDED_UPDATE, "raw", 1),
                (probe, probe),
            )
        finally:
            await raw_pool.close()


async def grant(pool: asyncpg.Pool, customer: str, quantity: int) -> None:
    grants = [{"feature": FEATURE, "credits": quantity}]
    new = NewPayment(
        tenant_id=DEFAULT_TENANT, api_key_id=None, customer_id=customer, product_id=None, amount_minor=100,
        currency="USD", description=None, payment_method=None, grants=grants, provider="sandbox",
    )  # fmt: skip
    async with transaction(pool) as conn:
        payment = await payments.insert(conn, payments.new_payment_id(), new, lease_seconds=None)
        await credit_moves.grant_for_payment(conn, payment)


async def _raw_account(owner_url: str, quantity: int) -> asyncpg.Pool:
    """The baseline's plain balance table, with one row."""
    pool = await asyncpg.create_pool(owner_url, max_size=10)
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE bench_balances (customer_id text PRIMARY KEY, remaining bigint NOT NULL)")
        await conn.execute("INSERT INTO bench_balances VALUES ('raw', $1)", quantity)
    return pool
