"""Refunds through the real sandbox: full, partial, idempotent, bounded, revoking access."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from tests.helpers import LOCAL, call, call_error, eventually, local_mcp, signed
from tests.helpers import post_webhook as post


@pytest.fixture
async def paid(mcp) -> dict:
    async with mcp() as client:
        return await call(
            client,
            "create_charge",
            customer_id="cus_rf",
            idempotency_key="paid",
            product_id="pro_monthly",
            payment_method="pm_card_visa",
        )


async def refund_events(db: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await db.fetch("SELECT event_type, outcome FROM webhook_events WHERE event_type LIKE '%refund%' ORDER BY id")
    return [(row["event_type"], row["outcome"]) for row in rows]


async def test_a_full_refund_revokes_the_entitlement(mcp, db, paid) -> None:
    async with mcp() as client:
        refund = await call(
            client, "refund_payment", payment_id=paid["payment_id"], idempotency_key="r1", reason="asked for it"
        )
        answer = await call(client, "check_entitlement", customer_id="cus_rf", feature="pro")
    assert refund["status"] == "succeeded" and refund["amount_minor"] == 2000
    assert refund["payment"]["status"] == "refunded" and refund["payment"]["refunded_minor"] == 2000
    assert answer["allowed"] is False
    assert await db.fetchval("SELECT revoked_at IS NOT NULL FROM entitlements") is True
    events = dict(await eventually(lambda: _two_refund_events(db)))
    assert events["refund.created"] in ("applied", "ignored")  # it raced the provider's answer; one of them won
    assert await db.fetchval("SELECT count(*) FROM payment_audit WHERE to_status = 'refunded'") == 1


async def test_partial_refunds_add_up_and_keep_access_until_the_last(mcp, db, paid) -> None:
    async with mcp() as client:
        first = await call(
            client, "refund_payment", payment_id=paid["payment_id"], idempotency_key="p1", amount_minor=500
        )
        assert first["payment"]["status"] == "partially_refunded"
        assert "the same share of any credits it granted was taken back" in first["payment"]["next_step"]
        assert (await call(client, "check_entitlement", customer_id="cus_rf", feature="pro"))["allowed"] is True
        too_much = await call_error(
            client, "refund_payment", payment_id=paid["payment_id"], idempotency_key="p2", amount_minor=1600
        )
        rest = await call(client, "refund_payment", payment_id=paid["payment_id"], idempotency_key="p3")
    assert "At most 15.00 USD" in too_much
    assert rest["amount_minor"] == 1500 and rest["payment"]["status"] == "refunded"
    assert await db.fetchval("SELECT refunded_minor FROM payments") == 2000


async def test_a_refund_replay_refunds_nothing_more(mcp, db, paid) -> None:
    async with mcp() as client:
        one = await call(
            client, "refund_payment", payment_id=paid["payment_id"], idempotency_key="same", amount_minor=300
        )
        two = await call(
            client, "refund_payment", payment_id=paid["payment_id"], idempotency_key="same", amount_minor=300
        )
        other = await call_error(
            client, "refund_payment", payment_id=paid["payment_id"], idempotency_key="same", amount_minor=400
        )
    assert two["replayed"] is True and two["refund_id"] == one["refund_id"]
    assert "already used for a different refund (amount_minor differ)" in other
    assert await db.fetchval("SELECT count(*) FROM sandbox.refunds") == 1
    assert await db.fetchval("SELECT refunded_minor FROM payments") == 300


async def test_concurrent_refunds_never_exceed_the_payment(mcp, db, paid) -> None:
    async with mcp() as a, mcp() as b:
        results = await asyncio.gather(
            *(
                client.call_tool(
                    "refund_payment",
                    {"payment_id": paid["payment_id"], "idempotency_key": f"c{n}", "amount_minor": 700},
                )
                for n, client in enumerate([a, b] * 3)
            )
        )
    assert sum(not result.is_error for result in results) == 2
    assert await db.fetchval("SELECT refunded_minor FROM payments") == 1400
    assert await db.fetchval("SELECT coalesce(sum((object->>'amount')::int), 0) FROM sandbox.refunds") == 1400


async def test_only_paid_payments_can_be_refunded(mcp) -> None:
    async with mcp() as client:
        waiting = await call(client, "create_charge", customer_id="cus_rf", idempotency_key="w", product_id="day_pass")
        message = await call_error(client, "refund_payment", payment_id=waiting["payment_id"], idempotency_key="x")
    assert "is requires_action; only a paid payment can be refunded" in message


async def test_a_refund_made_at_the_provider_reaches_the_ledger(app, db, paid) -> None:
    refund = {
        "id": "re_dashboard",
        "object": "refund",
        "amount": 2000,
        "currency": "usd",
        "status": "succeeded",
        "payment_intent": paid["provider_payment_id"],
        "metadata": {},
    }
    body = json.dumps({"id": "evt_dash", "object": "event", "type": "refund.created", "data": {"object": refund}})
    answer = (await post(app, body, signed(body))).json()
    assert answer["outcome"] == "applied"
    assert await db.fetchval("SELECT status FROM payments") == "refunded"
    assert await db.fetchval("SELECT revoked_at IS NOT NULL FROM entitlements") is True


async def _two_refund_events(db: asyncpg.Connection):
    events = await refund_events(db)
    return events if len(events) >= 2 else None


async def test_refunding_one_of_two_stacked_purchases_keeps_the_other(app, db) -> None:
    no_duplicate_guard = app.settings.model_copy(update={"duplicate_window_seconds": 0})
    async with local_mcp(no_duplicate_guard) as client:
        first, second = [
            await call(
                client,
                "create_charge",
                customer_id="cus_st",
                idempotency_key=key,
                product_id="pro_monthly",
                payment_method="pm_card_visa",
            )
            for key in ("one", "two")
        ]
        await call(client, "refund_payment", payment_id=first["payment_id"], idempotency_key="back")
        answer = await call(client, "check_entitlement", customer_id="cus_st", feature="pro")
    assert answer["allowed"] is True
    left = await db.fetchval("SELECT expires_at - now() FROM entitlements WHERE payment_id = $1", second["payment_id"])
    assert 29.9 < left.total_seconds() / 86400 <= 30


async def test_a_stuck_refund_is_finished_by_reconcile(app, db, paid) -> None:
    from server import refunds as refund_logic
    from server.reconciler import reconcile_once
    from server.refunds import RefundInput

    request = RefundInput(payment_id=paid["payment_id"], idempotency_key="stuck", caller=LOCAL)
    recorded, _ = await refund_logic.record(app.services, request)
    await db.execute("UPDATE refunds SET submit_lease_until = now() - interval '1 second'")  # its process died
    report = await reconcile_once(app.services)
    assert recorded.id in report.resubmitted
    assert await db.fetchval("SELECT status FROM refunds") == "succeeded"
    assert await db.fetchval("SELECT status FROM payments") == "refunded"
