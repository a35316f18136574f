"""Credits throughput: paywarden's consume against a raw guarded UPDATE on the same table, same run.

    uv run python -m benchmarks.credits [--operations 2000] [--concurrency 8]

Uses DATABASE_URL (or TEST_DATABASE_URL) when set, an embedded PostgreSQL otherwise; works in a
database of its own, dropped at the end. Prints operations per second for both and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio

import asyncpg

from benchmarks.harness import rate, scratch_database
from db import payments
from db.payments import NewPayment
from db.pool import create_pool, transaction
from server import credits, logs
from server.config import Settings
from server.ledger import credit_moves
from server.services import open_services
from server.tenancy import DEFAULT_TENANT, local_caller

FEATURE = "llm_tokens"
"""A metered feature of the default catalog: consume refuses features not sold as credits."""

GUARDED_UPDATE = """
UPDATE credit_accounts SET used = used + 1
 WHERE tenant_id = $1 AND customer_id = $2 AND feature = $3 AND granted - used - reserved >= 1
"""


async def run(operations: int, concurrency: int) -> None:
    async with scratch_database() as url:
        await measure(url, operations, concurrency)


async def measure(url: str, operations: int, concurrency: int) -> None:
    settings = Settings(_env_file=None, database_url=url)
    async with open_services(settings) as services:
        await grant(services.pool, "bench", operations * 10)
        await grant(services.pool, "raw", operations * 10)
        paywarden = await rate(
            operations,
            concurrency,
            lambda n: credits.consume(services, local_caller(DEFAULT_TENANT), "bench", FEATURE, 1, f"k{n}"),
        )
    pool = await create_pool(url, max_size=10)
    try:
        raw = await rate(
            operations, concurrency, lambda n: pool.execute(GUARDED_UPDATE, DEFAULT_TENANT, "raw", FEATURE)
        )
    finally:
        await pool.close()
    print(f"operations: {operations}, concurrency: {concurrency}")
    print(f"paywarden consume_credits (idempotent, ledgered):  {paywarden:8.0f} ops/s")
    print(f"raw asyncpg guarded UPDATE (baseline):             {raw:8.0f} ops/s")
    print(f"ratio paywarden / raw:                             {paywarden / raw:8.2f}")


async def grant(pool: asyncpg.Pool, customer: str, quantity: int) -> None:
    grants = [{"feature": FEATURE, "credits": quantity}]
    async with transaction(pool) as conn:
        payment = await payments.insert(
            conn,
            payments.new_payment_id(),
            NewPayment(
                tenant_id=DEFAULT_TENANT,
                api_key_id=None,
                customer_id=customer,
                product_id=None,
                amount_minor=100,
                currency="USD",
                description=None,
                payment_method=None,
                grants=grants,
                provider="sandbox",
            ),
            lease_seconds=None,
        )
        await credit_moves.grant_for_payment(conn, payment)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operations", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    logs.configure("text")
    asyncio.run(run(args.operations, args.concurrency))


if __name__ == "__main__":
    main()
