"""The same idempotency key never charges twice, however the agent retries."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.helpers import call, call_error

CHARGE = {
    "customer_id": "cus_i",
    "idempotency_key": "order-17",
    "product_id": "pro_monthly",
    "payment_method": "pm_card_visa",
}


async def intent_count(db: asyncpg.Connection) -> int:
    return await db.fetchval("SELECT count(*) FROM sandbox.payment_intents")


async def test_replay_returns_the_original_payment_and_charges_nothing(mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        first = await call(client, "create_charge", **CHARGE)
        again = await call(client, "create_charge", **CHARGE)
    assert again["replayed"] is True and first["replayed"] is False
    assert again["payment_id"] == first["payment_id"]
    assert again["provider_payment_id"] == first["provider_payment_id"]
    assert await db.fetchval("SELECT count(*) FROM payments") == 1
    assert await intent_count(db) == 1


async def test_same_key_with_a_different_request_is_refused_naming_the_difference(mcp, db) -> None:
    async with mcp() as client:
        await call(client, "create_charge", **CHARGE)
        message = await call_error(client, "create_charge", **{**CHARGE, "product_id": "pro_yearly"})
    assert "order-17" in message and "already used for a different request" in message
    assert "product_id" in message and "pro_monthly" in message and "pro_yearly" in message
    assert await db.fetchval("SELECT count(*) FROM payments") == 1


async def test_keys_are_scoped_per_customer(mcp, db) -> None:
    async with mcp() as client:
        one = await call(client, "create_charge", **CHARGE)
        other = await call(client, "create_charge", **{**CHARGE, "customer_id": "cus_other"})
    assert one["payment_id"] != other["payment_id"]
    assert other["replayed"] is False


async def test_concurrent_identical_calls_make_one_payment_and_one_provider_charge(mcp, db) -> None:
    async with mcp() as a, mcp() as b:
        results = await asyncio.gather(*(call(client, "create_charge", **CHARGE) for client in [a, b] * 10))
    assert len({result["payment_id"] for result in results}) == 1
    assert sum(not result["replayed"] for result in results) == 1
    assert await db.fetchval("SELECT count(*) FROM payments") == 1
    assert await intent_count(db) == 1
