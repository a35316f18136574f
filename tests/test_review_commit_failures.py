"""Review regression: a success whose receipt numbering fails at COMMIT (the deferred trigger of 0114/0116)
must be handled like any other failure to apply an event: kept as failed, retried, visible to operators."""

from __future__ import annotations

import asyncpg
import pytest

from tests.helpers import call, intent_event, signed
from tests.helpers import post_webhook as post


@pytest.fixture
async def payment(mcp) -> dict:
    async with mcp() as client:
        return await call(client, "create_charge", customer_id="cus_1", idempotency_key="k", product_id="day_pass")


async def test_a_success_whose_numbering_fails_at_commit_is_kept_as_failed(
    app, db: asyncpg.Connection, payment
) -> None:
    # Any error raised by the deferred trigger at COMMIT (here a constraint refusing every receipt).
    await db.execute("ALTER TABLE receipts ADD CONSTRAINT review_refuse CHECK (number < 0) NOT VALID")
    try:
        body = intent_event("payment_intent.succeeded", payment, event_id="evt_commit1")
        answer = await post(app, body, signed(body))
        stored = await db.fetchrow("SELECT outcome, last_error FROM webhook_events WHERE event_id = 'evt_commit1'")
    finally:
        await db.execute("ALTER TABLE receipts DROP CONSTRAINT review_refuse")
    assert answer.status_code == 500
    assert stored is not None, f"event not kept at all (answer {answer.status_code}: {answer.text[:200]})"
    assert stored["outcome"] == "failed"


async def test_a_listed_success_whose_numbering_fails_at_commit_does_not_stall_the_event_list(
    settings, listening_socket, db: asyncpg.Connection
) -> None:
    from server import charges
    from server.charges import ChargeInput
    from server.reconciler import reconcile_once
    from tests.helpers import LOCAL, click, running_app

    quiet = settings.model_copy(
        update={"sandbox_deliver_webhooks": False, "reconcile_after_seconds": 3600, "reconcile_interval_seconds": 0,
                "duplicate_window_seconds": 0}
    )  # fmt: skip
    async with running_app(quiet, listening_socket) as services:
        waiting = []
        for customer in ("cus_poison", "cus_healthy"):
            request = ChargeInput(customer_id=customer, idempotency_key="k", product_id="day_pass",
                                  payment_method="pm_card_authenticationRequired", caller=LOCAL)  # fmt: skip
            waiting.append(await charges.charge(services, request))
        await reconcile_once(services)
        for payment in waiting:
            await click(payment.next_action_url, "Pay")
        poison = waiting[0].payment_id
        await db.execute(
            f"ALTER TABLE receipts ADD CONSTRAINT review_refuse CHECK (payment_id <> '{poison}') NOT VALID"
        )
        try:
            report = await reconcile_once(services)
        finally:
            await db.execute("ALTER TABLE receipts DROP CONSTRAINT review_refuse")
    statuses = dict(await db.fetch("SELECT id, status FROM payments"))
    kept = await db.fetchval("SELECT string_agg(outcome, ',') FROM webhook_events"
        " WHERE event_type = 'payment_intent.succeeded' AND (payment_id = $1 OR payload::text LIKE $2)",
                             poison, f"%{poison}%")  # fmt: skip
    seen = (report.steps["provider event list"], statuses[waiting[1].payment_id], kept)
    # the event list step goes on; the event after the poisoned one is not held up; the poisoned one is kept,
    # to be retried and seen by an operator
    assert seen == ("ok", "succeeded", "failed")
