"""An event whose handling fails is kept, retried and replayable — and blocks nothing else."""

from __future__ import annotations

import json

import asyncpg
import pytest

from server import charges, inbox
from server.charges import ChargeInput
from server.reconciler import reconcile_once
from tests.helpers import LOCAL, call, click, intent_event, paywarden_command, running_app, signed
from tests.helpers import post_webhook as post


@pytest.fixture
async def two_payments(mcp) -> list[dict]:
    async with mcp() as client:
        return [
            await call(client, "create_charge", customer_id=f"cus_{n}", idempotency_key="k", product_id="day_pass")
            for n in (1, 2)
        ]


@pytest.fixture
def processing_handler_breaks(monkeypatch):
    real_apply = inbox._apply

    async def breaking_apply(conn, provider, event, actor, tenant_id, *locked):
        if event.event_type == "payment_intent.processing":
            raise RuntimeError("handler bug for processing events")
        return await real_apply(conn, provider, event, actor, tenant_id, *locked)

    monkeypatch.setattr(inbox, "_apply", breaking_apply)
    return monkeypatch


async def test_a_failing_event_is_kept_retried_and_replayed(
    app, db: asyncpg.Connection, two_payments, processing_handler_breaks
) -> None:
    first, second = two_payments
    broken = intent_event("payment_intent.processing", first, event_id="evt_f1")
    healthy = intent_event("payment_intent.succeeded", second, event_id="evt_f2")

    failed = await post(app, broken, signed(broken))
    assert failed.status_code == 500 and failed.json()["outcome"] == "failed"  # so the provider delivers it again
    assert (await post(app, healthy, signed(healthy))).json()["outcome"] == "applied"  # nothing else is blocked
    redelivered = await post(app, broken, signed(broken))
    assert redelivered.status_code == 500

    row = await db.fetchrow("SELECT outcome, attempts, last_error FROM webhook_events WHERE event_id = 'evt_f1'")
    assert (row["outcome"], row["attempts"]) == ("failed", 2) and "handler bug" in row["last_error"]
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", first["payment_id"]) == "requires_action"

    processing_handler_breaks.undo()  # the bug is fixed
    code, listing = await paywarden_command(app.settings.database_url, "webhooks", "list", "--failed")
    assert code == 0 and "evt_f1 payment_intent.processing failed attempts=2" in listing
    assert "tenant=- via=webhook" in listing  # failed before it matched a payment: no tenant recorded yet
    code, replayed = await paywarden_command(
        app.settings.database_url, "webhooks", "replay", "evt_f1", port=str(app.settings.port)
    )
    assert code == 0 and "evt_f1: applied" in replayed
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", first["payment_id"]) == "processing"
    assert (await post(app, broken, signed(broken))).json()["outcome"] == "duplicate"


async def test_the_reconciler_retries_failed_events(app, db, two_payments, processing_handler_breaks) -> None:
    from server.reconciler import reconcile_once

    body = intent_event("payment_intent.processing", two_payments[0], event_id="evt_f3")
    assert (await post(app, body, signed(body))).status_code == 500
    processing_handler_breaks.undo()
    assert (await reconcile_once(app.services)).events_retried == 0  # its next attempt is a minute away
    await db.execute("UPDATE webhook_events SET next_attempt_at = now() WHERE event_id = 'evt_f3'")  # time passes
    report = await reconcile_once(app.services)
    assert report.events_retried == 1
    assert await db.fetchval("SELECT outcome FROM webhook_events WHERE event_id = 'evt_f3'") == "applied"


async def test_a_permanently_failing_event_is_parked_for_an_operator(
    app, db, two_payments, processing_handler_breaks, database_url: str
) -> None:
    from server.reconciler import reconcile_once
    from server.services import open_services

    body = intent_event("payment_intent.processing", two_payments[0], event_id="evt_f4")
    assert (await post(app, body, signed(body))).json()["outcome"] == "failed"
    async with open_services(app.settings.model_copy(update={"max_event_attempts": 3})) as services:
        outcomes = []
        for _ in range(2):
            await db.execute("UPDATE webhook_events SET next_attempt_at = now() WHERE event_id = 'evt_f4'")
            outcomes += [result.outcome for result in await inbox.retry_failed(services)]
        assert outcomes == ["failed", "parked"]
        await db.execute("UPDATE webhook_events SET next_attempt_at = now() WHERE event_id = 'evt_f4'")
        assert (await reconcile_once(services)).events_retried == 0  # parked: no more automatic attempts
    code, listing = await paywarden_command(database_url, "webhooks", "list", "--problems")
    assert "PROBLEM" in listing and "evt_f4 payment_intent.processing parked attempts=3" in listing
    processing_handler_breaks.undo()
    code, replayed = await paywarden_command(database_url, "webhooks", "replay", "evt_f4", port=str(app.settings.port))
    assert code == 0 and "evt_f4: applied" in replayed


async def test_retrying_failed_events_pages_through_all_of_them(app, db) -> None:
    """More failed events than one page: every one due is retried, not only the oldest page."""
    for n in range(130):
        body = {"id": f"evt_page_{n}", "type": "customer.created", "data": {"object": {}}}
        await db.execute(
            "INSERT INTO webhook_events (provider, endpoint, event_id, event_type, payload, outcome, attempts)"
            " VALUES ('sandbox', 'platform', $1, 'customer.created', $2, 'failed', 1)",
            body["id"],
            json.dumps(body),
        )
    results = await inbox.retry_failed(app.services, page=50)
    assert len(results) == 130 and {result.outcome for result in results} == {"unhandled"}
    assert await db.fetchval("SELECT count(*) FROM webhook_events WHERE outcome = 'failed'") == 0


@pytest.fixture
async def payment(mcp) -> dict:
    async with mcp() as client:
        return await call(client, "create_charge", customer_id="cus_1", idempotency_key="k", product_id="day_pass")


async def test_a_success_whose_numbering_fails_at_commit_is_kept_as_failed(
    app, db: asyncpg.Connection, payment
) -> None:
    """Refused at COMMIT (the receipt's numbering is a deferred trigger): kept as failed, like any failure to
    apply, for a retry and an operator."""
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
