"""The reconciler reads the provider's event list from the last event it read, so an event the
provider never delivered is applied anyway: once, through the inbox, audited as the reconciler."""

from __future__ import annotations

import asyncio
import json
import time

import asyncpg

from server import charges, inbox
from server.charges import ChargeInput
from server.reconciler import reconcile_once
from server.services import open_services
from tests.helpers import LOCAL, click, running_app

# No webhooks, and open payments too fresh for the one-by-one check: only the event list can help.
ONLY_THE_EVENT_LIST = {
    "sandbox_deliver_webhooks": False,
    "reconcile_after_seconds": 3600,
    "reconcile_interval_seconds": 0,
    "duplicate_window_seconds": 0,
}


async def test_events_never_delivered_are_read_from_the_provider_and_applied_once(
    settings, listening_socket, db: asyncpg.Connection
) -> None:
    quiet = settings.model_copy(update=ONLY_THE_EVENT_LIST)
    async with (
        running_app(quiet, listening_socket) as services,
        open_services(quiet) as other_process,
    ):
        waiting = [await _awaiting_the_customer(services, f"cus_list_{n}") for n in range(9)]
        truth = {}
        for n, payment in enumerate(waiting):
            decision = ("Pay", "Pay", "Decline")[n % 3]
            await click(payment.next_action_url, decision)
            truth[payment.payment_id] = "succeeded" if decision == "Pay" else "failed"
        assert await db.fetchval("SELECT count(*) FROM webhook_events") == 0  # nothing was delivered

        first, concurrent = await asyncio.gather(reconcile_once(services), reconcile_once(other_process))
        again = await reconcile_once(services)  # reads the cancel events of closing the failed intents
        third = await reconcile_once(services)

    assert dict(await db.fetch("SELECT id, status FROM payments")) == truth
    assert first.events_applied + concurrent.events_applied == 9
    assert again.events_applied == 0 and again.updated == []
    assert third.events_read == 0
    sandbox_events = await db.fetchval("SELECT count(*) FROM sandbox.events")
    assert await db.fetchval("SELECT count(*) FROM webhook_events WHERE source = 'event_list'") == sandbox_events
    actors = await db.fetch("SELECT DISTINCT actor FROM payment_audit WHERE to_status IN ('succeeded', 'failed')")
    assert [row["actor"] for row in actors] == ["reconciler"]
    granted = await db.fetchval("SELECT count(*) FROM entitlements WHERE revoked_at IS NULL")
    assert granted == sum(status == "succeeded" for status in truth.values())


async def test_the_event_list_is_read_in_order_page_by_page(settings, listening_socket, db) -> None:
    quiet = settings.model_copy(update=ONLY_THE_EVENT_LIST)
    async with running_app(quiet, listening_socket) as services:
        for n in range(5):
            await _awaiting_the_customer(services, f"cus_pages_{n}")
        in_order = [row["id"] for row in await db.fetch("SELECT id FROM sandbox.events ORDER BY seq")]
        since = int(time.time()) - 60

        read, cursor = [], None
        while True:
            page = await services.provider.events_after(cursor, created_since=since, limit=2)
            assert page is not None
            read += [event.event_id for event in page.events]
            cursor = read[-1]
            if not page.has_more:
                break
        assert read == in_order

        await db.execute("DELETE FROM sandbox.deliveries WHERE event_id = $1", in_order[0])
        await db.execute("DELETE FROM sandbox.events WHERE id = $1", in_order[0])
        assert await services.provider.events_after(in_order[0], created_since=since, limit=2) is None


async def test_a_cursor_the_provider_forgot_restarts_from_the_lookback_window(
    settings, listening_socket, db: asyncpg.Connection
) -> None:
    quiet = settings.model_copy(update=ONLY_THE_EVENT_LIST)
    async with running_app(quiet, listening_socket) as services:
        payment = await _awaiting_the_customer(services, "cus_forgot")
        await reconcile_once(services)
        await db.execute("UPDATE provider_event_cursors SET last_event_id = 'evt_long_gone'")
        await click(payment.next_action_url, "Pay")

        report = await reconcile_once(services)

    assert report.errors == [] and report.events_applied == 1
    assert await db.fetchval("SELECT status FROM payments") == "succeeded"
    assert await db.fetchval("SELECT last_event_id FROM provider_event_cursors") == await db.fetchval(
        "SELECT id FROM sandbox.events ORDER BY seq DESC LIMIT 1"
    )


async def _awaiting_the_customer(services, customer_id: str):
    request = ChargeInput(
        customer_id=customer_id,
        idempotency_key="k",
        product_id="day_pass",
        payment_method="pm_card_authenticationRequired",
        caller=LOCAL,
    )
    payment = await charges.charge(services, request)
    assert payment.status == "requires_action" and payment.next_action_url
    return payment


async def test_an_event_nobody_can_read_is_kept_and_passed_over(settings, listening_socket, db) -> None:
    """An event in the provider's list whose metadata is a list (not an object): it is kept as rejected,
    the cursor moves past it, and the events after it are applied in the same pass."""
    quiet = settings.model_copy(update=ONLY_THE_EVENT_LIST)
    async with running_app(quiet, listening_socket) as services:
        payment = await _awaiting_the_customer(services, "cus_unreadable")
        await reconcile_once(services)
        intent = {"id": payment.provider_payment_id, "object": "payment_intent", "amount": 300, "currency": "usd",
                  "status": "succeeded", "metadata": ["payment_id", payment.payment_id]}  # fmt: skip
        unreadable = {"id": "evt_unreadable", "object": "event", "type": "payment_intent.succeeded",
                      "created": int(time.time()), "data": {"object": intent}}  # fmt: skip
        await db.execute(
            "INSERT INTO sandbox.events (id, type, payload) VALUES ($1, $2, $3)",
            unreadable["id"],
            unreadable["type"],
            json.dumps(unreadable),
        )
        await click(payment.next_action_url, "Pay")  # a readable event after the unreadable one
        report = await reconcile_once(services)
        again = await reconcile_once(services)
    assert report.steps["provider event list"] == "ok"
    assert report.events_unreadable == 1 and report.events_applied == 1
    assert await db.fetchval("SELECT status FROM payments") == "succeeded"
    kept = await db.fetchrow("SELECT outcome, note FROM webhook_events WHERE event_type = 'malformed'")
    assert kept["outcome"] == "rejected" and "not of the types Stripe sends" in kept["note"]
    assert again.events_read == 0


async def test_an_event_that_fails_to_apply_is_kept_as_failed_and_passed_over(
    settings, listening_socket, db, monkeypatch
) -> None:
    """An event in the provider's list that parses but whose handling raises: it is stored as failed with its
    error (to be retried), the cursor moves past it, and the events after it are applied in the same pass."""
    quiet = settings.model_copy(update=ONLY_THE_EVENT_LIST)
    async with running_app(quiet, listening_socket) as services:
        broken, healthy = [await _awaiting_the_customer(services, f"cus_apply_{n}") for n in (1, 2)]
        await reconcile_once(services)
        real_apply = inbox._apply

        async def failing_for_one_payment(conn, provider, event, actor, tenant_id, *locked):
            if event.payment is not None and event.payment.provider_payment_id == broken.provider_payment_id:
                raise RuntimeError("handler bug")
            return await real_apply(conn, provider, event, actor, tenant_id, *locked)

        monkeypatch.setattr(inbox, "_apply", failing_for_one_payment)
        await click(broken.next_action_url, "Pay")  # its events come first in the list
        await click(healthy.next_action_url, "Pay")
        report = await reconcile_once(services)
        again = await reconcile_once(services)
    assert report.steps["provider event list"] == "ok" and report.events_applied >= 1
    assert any("applying the event failed" in error for error in report.errors), report.errors
    statuses = dict(await db.fetch("SELECT id, status FROM payments"))
    assert statuses == {broken.payment_id: "requires_action", healthy.payment_id: "succeeded"}
    failed = await db.fetch("SELECT outcome, attempts, last_error FROM webhook_events WHERE outcome = 'failed'")
    assert failed and all(row["attempts"] == 1 and "RuntimeError: handler bug" in row["last_error"] for row in failed)
    assert await db.fetchval("SELECT last_event_id FROM provider_event_cursors") == await db.fetchval(
        "SELECT id FROM sandbox.events ORDER BY seq DESC LIMIT 1"
    )
    assert again.events_read == 0  # the cursor moved past it; the failed event waits for the inbox's retry
