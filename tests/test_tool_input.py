"""Bad tool input gets a clear error and writes nothing."""

from __future__ import annotations

import asyncpg
import pytest

from tests.helpers import call_error

BASE = {"customer_id": "cus_x", "idempotency_key": "bad-1"}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"amount_minor": 0, "currency": "USD"}, "greater than 0"),
        ({"amount_minor": -500, "currency": "USD"}, "greater than 0"),
        ({"amount_minor": 12.5, "currency": "USD"}, "valid integer"),
        ({"amount_minor": "1000", "currency": "USD"}, "valid integer"),
        ({"amount_minor": 100_000_000, "currency": "USD"}, "less than or equal to 99999999"),
        ({"amount_minor": 500, "currency": "XYZ"}, "Unknown currency 'XYZ'"),
        ({"amount_minor": 500, "currency": "dollars"}, "at most 3 characters"),
        ({"product_id": "platinum_forever"}, "Unknown product_id 'platinum_forever'"),
        ({"product_id": "pro_monthly", "amount_minor": 1, "currency": "USD"}, "not both"),
        ({}, "Give a catalog product_id, or both amount_minor and currency"),
        ({"amount_minor": 500}, "both amount_minor and currency"),
        ({"product_id": "pro_monthly", "description": "x" * 5000}, "at most 1000 characters"),
        ({"product_id": "pro_monthly", "customer_id": "c" * 300}, "at most 255 characters"),
        ({"product_id": "pro_monthly", "idempotency_key": "k" * 300}, "at most 255 characters"),
        ({"product_id": "p" * 65}, "at most 64 characters"),
        ({"product_id": "pro_monthly", "customer_id": ""}, "at least 1 character"),
        ({"product_id": "pro_monthly", "customer_id": "alice\u202egnp.exe"}, "customer_id: has characters a"),
        ({"product_id": "pro_monthly", "customer_id": "team/alice"}, "customer_id: has characters a customer id"),
        ({"product_id": "pro_monthly", "idempotency_key": "k\u200b1"}, "idempotency_key: has characters"),
        ({"product_id": "pro_monthly", "description": "refund \u2066me\u2069"}, "description: has characters"),
        ({"amount_minor": 500, "currency": "U$D"}, "currency: String should match pattern"),  # not about invisibles
    ],
)
async def test_create_charge_rejects(mcp, db: asyncpg.Connection, arguments: dict, expected: str) -> None:
    async with mcp() as client:
        message = await call_error(client, "create_charge", **{**BASE, **arguments})
    assert expected in message
    assert "Traceback" not in message and "SELECT" not in message
    assert await db.fetchval("SELECT count(*) FROM payments") == 0
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    assert await db.fetchval("SELECT count(*) FROM sandbox.payment_intents") == 0


async def test_get_payment_of_an_unknown_id_says_so(mcp) -> None:
    async with mcp() as client:
        message = await call_error(client, "get_payment", payment_id="pay_0123456789abcdef01234567")
        malformed = await call_error(client, "get_payment", payment_id="pi_123; DROP TABLE payments")
    assert "No payment with payment_id" in message
    assert "payment_id" in malformed


async def test_check_entitlement_for_a_feature_nobody_sells(mcp) -> None:
    from tests.helpers import call

    async with mcp() as client:
        answer = await call(client, "check_entitlement", customer_id="cus_x", feature="teleportation")
    assert answer["allowed"] is False and answer["reason"] == "unknown_feature" and answer["offers"] == []


async def test_argument_errors_say_how_to_fix_the_call(mcp) -> None:
    async with mcp() as client:
        message = await call_error(client, "create_charge", **{**BASE, "amount_minor": 19.99, "currency": "USD"})
    assert "Invalid arguments for create_charge: amount_minor" in message
    assert "expected an integer in the currency's minor units, e.g. 1999 for 19.99 USD" in message
    assert "pydantic" not in message and "validation error for" not in message


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("create_charge", {**BASE, "product_id": "pro_monthly", "description": "a\x00b"}),
        ("create_charge", {**BASE, "product_id": "pro\x07"}),
        ("create_charge", {**BASE, "product_id": "pro_monthly", "payment_method": "pm\x00"}),
        ("check_entitlement", {"customer_id": "cus_x", "feature": "pro\x00"}),
    ],
)
async def test_control_characters_are_refused_clearly(mcp, db: asyncpg.Connection, tool: str, arguments) -> None:
    async with mcp() as client:
        message = await call_error(client, tool, **arguments)
    assert "Invalid arguments" in message and "has characters that are not allowed here" in message
    assert "\\x00" not in message.split("(got")[0]  # no pattern text
    assert await db.fetchval("SELECT count(*) FROM payments") == 0
