"""The whole life of a charge through a real MCP client, real HTTP webhooks and real PostgreSQL."""

from __future__ import annotations

import asyncpg

from tests.helpers import call, eventually


async def webhook_outcomes(db: asyncpg.Connection, payment_id: str) -> list[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT event_type, outcome FROM webhook_events WHERE payment_id = $1 ORDER BY id", payment_id
    )
    return [(row["event_type"], row["outcome"]) for row in rows]


async def test_pay_with_card_then_entitled(mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        before = await call(client, "check_entitlement", customer_id="cus_1", feature="pro")
        assert before["allowed"] is False
        assert before["reason"] == "no_entitlement"
        assert "pro_monthly" in [offer["product_id"] for offer in before["offers"]]

        charge = await call(
            client,
            "create_charge",
            customer_id="cus_1",
            idempotency_key="k1",
            product_id="pro_monthly",
            payment_method="pm_card_visa",
        )
        assert (charge["amount_minor"], charge["currency"], charge["replayed"]) == (2000, "USD", False)
        assert charge["status"] == "succeeded"

        payment_id = charge["payment_id"]
        events = dict(await eventually(lambda: _has_event(db, payment_id, "payment_intent.succeeded")))
        # The provider's synchronous answer and its webhook race; whichever lands second changes nothing.
        assert events["payment_intent.succeeded"] in ("applied", "ignored")

        paid = await call(client, "get_payment", payment_id=payment_id)
        assert paid["status"] == "succeeded"
        steps = [(entry["from_status"], entry["to_status"], entry["actor"]) for entry in paid["timeline"]]
        assert steps[0] == (None, "created", "agent") and len(steps) == 2
        assert steps[1][:2] == ("created", "succeeded") and steps[1][2] in ("provider", "webhook")

        after = await call(client, "check_entitlement", customer_id="cus_1", feature="pro")
        assert after["allowed"] is True and after["reason"] == "active" and after["expires_at"]
        assert after["offers"] == []


async def _has_event(db: asyncpg.Connection, payment_id: str, event_type: str):
    events = await webhook_outcomes(db, payment_id)
    return events if event_type in [t for t, _ in events] else None
