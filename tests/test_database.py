"""What the database itself guarantees: migrations under a lock, an append-only audit, entitlement rules."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from db.migrate import discover_migrations, migrate_url
from tests.helpers import approve_everything, call, with_database


@pytest.fixture
async def empty_database(server_url: str):
    name = f"paywarden_empty_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(with_database(server_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_concurrent_migrations_apply_each_file_exactly_once(empty_database: str) -> None:
    results = await asyncio.gather(*(migrate_url(empty_database) for _ in range(4)))
    applied = sorted(m.version for result in results for m in result)
    assert applied == [m.version for m in discover_migrations()]
    assert await migrate_url(empty_database) == []


@pytest.mark.parametrize(
    "statement",
    ["UPDATE payment_audit SET reason = 'rewritten'", "DELETE FROM payment_audit", "TRUNCATE payment_audit"],
)
async def test_the_audit_trail_refuses_to_change(mcp, db: asyncpg.Connection, statement: str) -> None:
    async with mcp() as client:
        await call(client, "create_charge", customer_id="c", idempotency_key="k", product_id="day_pass")
    before = await db.fetch("SELECT * FROM payment_audit ORDER BY id")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await db.execute(statement)
    assert await db.fetch("SELECT * FROM payment_audit ORDER BY id") == before


async def test_buying_twice_stacks_the_periods(mcp) -> None:
    async with mcp(elicitation_callback=approve_everything) as client:
        for key in ("s1", "s2"):
            charge = await call(
                client,
                "create_charge",
                customer_id="cus_s",
                idempotency_key=key,
                product_id="pro_monthly",
                payment_method="pm_card_visa",
            )
            assert charge["status"] == "succeeded"
        answer = await call(client, "check_entitlement", customer_id="cus_s", feature="pro")
    expires = datetime.fromisoformat(answer["expires_at"])
    assert timedelta(days=59, hours=23) < expires - datetime.now(UTC) <= timedelta(days=60)


async def test_an_expired_entitlement_says_expired_and_offers_a_renewal(mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        await call(
            client,
            "create_charge",
            customer_id="cus_e",
            idempotency_key="e1",
            product_id="day_pass",
            payment_method="pm_card_visa",
        )
        await db.execute(
            "UPDATE entitlements SET starts_at = now() - interval '2 days', expires_at = now() - interval '1 day'"
        )
        answer = await call(client, "check_entitlement", customer_id="cus_e", feature="pro")
    assert answer["allowed"] is False and answer["reason"] == "expired"
    assert answer["expires_at"] is not None and answer["offers"]


async def test_amounts_are_whole_minor_units_in_the_database(db: asyncpg.Connection) -> None:
    types = await db.fetch(
        "SELECT column_name, data_type FROM information_schema.columns WHERE column_name LIKE '%amount%'"
    )
    assert types and all(row["data_type"] == "bigint" for row in types)
