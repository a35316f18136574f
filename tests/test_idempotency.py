"""The same idempotency key never charges twice, however the agent retries."""

from __future__ import annotations

import asyncio

import asyncpg

from server import charges
from server.charges import ChargeInput
from tests.helpers import LOCAL, call, call_error

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
        results = await asyncio.gather(*(client.call_tool("create_charge", CHARGE) for client in [a, b] * 10))
    answers = [result.structured_content for result in results if not result.is_error]
    refusals = [result.content[0].text for result in results if result.is_error]
    assert len({answer["payment_id"] for answer in answers}) == 1
    assert sum(not answer["replayed"] for answer in answers) == 1
    assert all("still in progress; retry shortly with the same key" in text for text in refusals)
    assert await db.fetchval("SELECT count(*) FROM payments") == 1
    assert await intent_count(db) == 1


async def test_a_retry_while_the_first_call_is_in_flight_is_told_to_wait(app, mcp, db) -> None:
    """The first call has recorded the payment and holds the lease; the provider has not answered yet."""
    services = app.services
    request = ChargeInput(**CHARGE, caller=LOCAL)
    await charges.record(services, request, charges.price(request, services.catalog, services.provider), "not_asked")
    async with mcp() as client:
        message = await call_error(client, "create_charge", **CHARGE)
        assert "still in progress; retry shortly with the same key" in message
        assert await intent_count(db) == 0

        await db.execute("UPDATE payments SET submit_lease_until = now() - interval '1 second'")  # it died
        finished = await call(client, "create_charge", **CHARGE)
    assert finished["replayed"] is True and finished["status"] == "succeeded"
    assert await intent_count(db) == 1
