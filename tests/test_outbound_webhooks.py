"""Webhooks to the merchant's app: events from a transactional outbox, signed with Standard Webhooks,
delivered once per webhook-id, retried while the receiver is down, never sent for a rolled-back change,
once across two delivery workers, and never to a private address."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from db import outbox as rows
from db import payments as payment_rows
from db.pool import transaction
from server import charges, outbox, webhook_endpoints, webhook_urls
from server.errors import UnsafeWebhookUrl
from server.ledger import payment_machine
from server.outbox import EVENT_TYPES
from server.payments import PaymentStatus, PaymentView
from server.services import open_services
from server.webhook_delivery import Deliverer, backoff_seconds, signed_headers
from tests.helpers import (
    api_client,
    assert_problem,
    eventually,
    new_key,
    paywarden_command,
    paywarden_ups,
    webhook_receiver,
)

VISA = "pm_card_visa"


async def _register(http, receiver, **body) -> dict:
    created = await http.post("/v1/webhook_endpoints", json={"url": receiver.url, **body})
    assert created.status_code == 201, created.text
    receiver.secrets = [created.json()["secret"]]
    return created.json()


async def _outbox_ids(db, tenant: str = "default") -> Counter[str]:
    return Counter(row["id"] for row in await db.fetch("SELECT id FROM outbox_events WHERE tenant_id = $1", tenant))


async def test_a_full_lifecycle_arrives_once_per_webhook_id(app, api_key, db):
    async with webhook_receiver() as receiver, api_client(app.base_url, api_key) as http:
        await _register(http, receiver)
        charge = {"customer_id": "alice", "payment_method": VISA}
        credits = await http.post("/v1/charges", json={**charge, "product_id": "credits_100k"},
                                  headers={"Idempotency-Key": "c"})  # fmt: skip
        payment_id = credits.json()["payment_id"]
        await http.post("/v1/credits/consumptions", json={"customer_id": "alice", "feature": "llm_tokens",
                        "quantity": 95_000}, headers={"Idempotency-Key": "u"})  # fmt: skip
        await http.post("/v1/charges", json={**charge, "amount_minor": 9000, "currency": "USD"},
                        headers={"Idempotency-Key": "big"})  # fmt: skip
        await http.post("/v1/charges", json={"customer_id": "alice", "product_id": "day_pass"},
                        headers={"Idempotency-Key": "page"})  # fmt: skip
        await http.post("/v1/charges", json={**charge, "product_id": "pro_monthly", "payment_method":
                        "pm_card_chargeDeclined"}, headers={"Idempotency-Key": "declined"})  # fmt: skip
        await http.post(
            f"/v1/charges/{payment_id}/refunds", json={"amount_minor": 100}, headers={"Idempotency-Key": "p"}
        )
        await http.post(f"/v1/charges/{payment_id}/refunds", headers={"Idempotency-Key": "f"})
        shown = (await http.get(f"/v1/charges/{payment_id}")).json()
        plan = await http.post("/v1/subscriptions", json={**charge, "product_id": "pro_ai_monthly"},
                               headers={"Idempotency-Key": "plan"})  # fmt: skip
        await http.post(f"/v1/subscriptions/{plan.json()['subscription_id']}/cancel", json={"at_period_end": False})

        expected = await _outbox_ids(db)
        await eventually(lambda: receiver.ids().keys() >= expected.keys())
        await asyncio.sleep(0.3)  # a duplicate, were there one, would have come by now
    assert receiver.ids() == expected and set(expected.values()) == {1}
    unseen = {"payment.canceled", "dispute.opened", "dispute.closed"}  # test_disputes.py sees the disputes'
    assert {event["type"] for event in receiver.events} == set(EVENT_TYPES) - unseen
    for event, headers in zip(receiver.events, receiver.headers, strict=True):
        assert headers["webhook-id"] == event["id"] and event["tenant"] == "default"
        assert set(event) == {"id", "type", "created_at", "tenant", "data"}
        assert event["created_at"].endswith("Z")  # UTC as the API and the exports write it
    # Deliveries run concurrently, so arrival order is not the order of the changes; created_at is.
    by_time = sorted(receiver.events, key=lambda e: e["created_at"])
    refunded = [e["data"] for e in by_time if e["type"] == "payment.refunded"]
    assert [data["status"] for data in refunded] == ["partially_refunded", "refunded"]
    assert (
        set(refunded[-1]) == set(shown) - {"timeline", "receipt_url", "disputes"}
        and refunded[-1]["refunded_minor"] == 1000
    )
    low = next(e["data"] for e in receiver.events if e["type"] == "credits.low_balance")
    assert low["low_balance_threshold"] == 10_000 and low["balance"]["remaining"] == 5_000
    revoked = next(e["data"] for e in receiver.events if e["type"] == "entitlement.revoked")
    assert revoked["payment_id"] == payment_id and revoked["credits"] == 100_000 and revoked["revoked_at"]


async def test_a_receiver_down_for_a_while_gets_everything_once_it_is_up(app, api_key, db, database_url):
    async with webhook_receiver() as receiver, api_client(app.base_url, api_key) as http:
        endpoint = await _register(http, receiver)
        receiver.up = False
        await http.post("/v1/charges", json={"customer_id": "bob", "product_id": "pro_monthly", "payment_method": VISA},
                        headers={"Idempotency-Key": "k"})  # fmt: skip
        await eventually(lambda: db.fetchval("SELECT min(attempts) >= 2 FROM webhook_deliveries"))
        receiver.up = True
        expected = await _outbox_ids(db)
        await eventually(lambda: receiver.ids().keys() >= expected.keys())
    assert receiver.ids() == expected and set(expected.values()) == {1}
    failed = await db.fetch("SELECT status_code, error, response_prefix FROM webhook_delivery_attempts "
                            "WHERE status_code = 503")  # fmt: skip
    assert failed and failed[0]["error"] == "HTTP 503" and failed[0]["response_prefix"] == "down for maintenance"
    code, out = await paywarden_command(database_url, "endpoints", "deliveries", endpoint["endpoint_id"])
    assert code == 0 and "delivered" in out and "status=503" in out and "status=200" in out


async def test_a_change_that_rolls_back_sends_nothing(app, api_key, db):
    async with webhook_receiver() as receiver, api_client(app.base_url, api_key) as http:
        await _register(http, receiver, event_types=["payment.canceled", "approval.requested"])
        held = await http.post("/v1/charges", json={"customer_id": "carol", "amount_minor": 9000, "currency": "USD"},
                               headers={"Idempotency-Key": "big"})  # fmt: skip
        payment_id = held.json()["payment_id"]
        with pytest.raises(RuntimeError):
            async with transaction(app.services.pool) as conn:
                locked = await payment_rows.lock(conn, payment_id, tenant_id=None)
                cancel = payment_machine.Transition(to_status=PaymentStatus.CANCELED, actor="operator", reason="test")
                await payment_machine.apply(conn, locked, cancel)
                assert await conn.fetchval("SELECT count(*) FROM outbox_events WHERE type = 'payment.canceled'") == 1
                raise RuntimeError("the change fails after its event was written")
        assert await db.fetchval("SELECT count(*) FROM outbox_events WHERE type = 'payment.canceled'") == 0
        await eventually(lambda: [e for e in receiver.events if e["type"] == "approval.requested"])
        await charges.reject(app.services, payment_id, "ops", "too big")
        await eventually(lambda: [e for e in receiver.events if e["type"] == "payment.canceled"])
    assert Counter(event["type"] for event in receiver.events) == {"approval.requested": 1, "payment.canceled": 1}


async def test_two_delivery_workers_deliver_each_event_once(services, settings, db):
    async with webhook_receiver() as receiver, open_services(settings) as second:
        added = await webhook_endpoints.add(services, tenant_id="default", url=receiver.url)
        receiver.secrets = [added.secret]
        for number in range(60):
            async with transaction(services.pool) as conn:
                view = PaymentView.model_validate(_a_payment_view(number))
                await outbox.record(conn, "default", "payment.succeeded", view)
        workers = [Deliverer(services), Deliverer(second)]
        try:
            while len(receiver.events) < 60:
                await asyncio.gather(*(worker.deliver_due() for worker in workers))
        finally:
            for worker in workers:
                await worker.close()
    assert len(receiver.ids()) == 60 and set(receiver.ids().values()) == {1}
    assert await db.fetchval("SELECT count(*) FROM webhook_delivery_attempts") == 60


@pytest.mark.slow
async def test_two_paywarden_up_processes_deliver_each_event_once(services, database_url, db):
    async with webhook_receiver() as receiver:
        added = await webhook_endpoints.add(services, tenant_id="default", url=receiver.url)
        receiver.secrets = [added.secret]
        async with paywarden_ups(database_url, 2, **DELIVERING_ONLY):
            async with transaction(services.pool) as conn:  # due at once, while both processes are polling
                for number in range(60):
                    await outbox.record(conn, "default", "payment.succeeded",
                                        PaymentView.model_validate(_a_payment_view(number)))  # fmt: skip
            await eventually(lambda: len(receiver.events) >= 60)
            await asyncio.sleep(0.3)  # a second delivery of any of them, were there one, would have come by now
    assert receiver.refused == 0 and len(receiver.ids()) == 60 and set(receiver.ids().values()) == {1}
    assert [headers["webhook-id"] for headers in receiver.headers] == [event["id"] for event in receiver.events]
    assert await db.fetchval("SELECT count(*) FROM webhook_delivery_attempts") == 60


DELIVERING_ONLY = {
    "webhook_delivery_interval_seconds": "0.05",
    "allow_private_webhook_urls": "true",  # the receiver listens on 127.0.0.1
    "sandbox_deliver_webhooks": "false",
    "reconcile_interval_seconds": "0",
}
"""Settings for `paywarden up` processes that only deliver webhooks, and look for due ones often."""


def _a_payment_view(number: int) -> dict:
    return {
        "payment_id": f"pay_{number}",
        "status": "succeeded",
        "amount_minor": 100,
        "currency": "USD",
        "amount_display": "1.00 USD",
        "customer_id": "c",
        "product_id": None,
        "description": None,
        "provider_payment_id": None,
        "next_action_url": None,
        "failure_reason": None,
        "approval_reason": None,
        "refunded_minor": 0,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "next_step": "Paid.",
    }


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hooks",
        "http://localhost/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://100.100.100.200/",
        "ftp://example.com/",
        "http://user:secret@93.184.216.34/",
        "http://127.0.0.1:8000@evil.com/hooks",
        "http://93.184.216.34:443@127.0.0.1/hooks",
        "not a url",
    ],
)
async def test_private_or_malformed_urls_are_refused_at_registration(services, url):
    strict = services.settings.model_copy(update={"allow_private_webhook_urls": False})
    with pytest.raises(UnsafeWebhookUrl):
        await webhook_urls.check(url, allow_private=strict.allow_private_webhook_urls)


async def test_a_public_address_is_accepted_and_the_cli_refuses_a_private_one(database_url, services):
    assert await webhook_urls.check("https://93.184.216.34/hooks", allow_private=False)
    code, out = await paywarden_command(database_url, "endpoints", "add", "--tenant", "default", "http://127.0.0.1/x")
    assert code == 1 and "non-public address" in out
    assert await webhook_endpoints.listing(services, None) == []


async def test_the_guard_runs_again_at_delivery(services, settings, db):
    async with webhook_receiver() as receiver:
        added = await webhook_endpoints.add(services, tenant_id="default", url=receiver.url)  # allowed then
        receiver.secrets = [added.secret]
        async with transaction(services.pool) as conn:
            await outbox.record(conn, "default", "payment.succeeded", PaymentView.model_validate(_a_payment_view(1)))
        strict = settings.model_copy(update={"allow_private_webhook_urls": False})
        async with open_services(strict) as guarded:
            worker = Deliverer(guarded)
            try:
                assert await worker.deliver_due() == 1
            finally:
                await worker.close()
    assert receiver.events == []
    attempt = await db.fetchrow("SELECT status_code, error FROM webhook_delivery_attempts")
    assert attempt["status_code"] is None and attempt["error"].startswith("not sent: 127.0.0.1 resolves to")


async def test_a_redirect_is_not_followed_and_counts_as_a_failed_attempt(services, db):
    async with webhook_receiver() as redirecting, webhook_receiver() as target:
        added = await webhook_endpoints.add(services, tenant_id="default", url=redirecting.url)
        redirecting.redirect_to, target.secrets = target.url, [added.secret]
        async with transaction(services.pool) as conn:
            await outbox.record(conn, "default", "payment.succeeded", PaymentView.model_validate(_a_payment_view(1)))
        worker = Deliverer(services)
        try:
            assert await worker.deliver_due() == 1
        finally:
            await worker.close()
    assert target.events == [] and target.refused == 0  # nothing reached where the redirect pointed
    attempt = await db.fetchrow("SELECT status_code, error FROM webhook_delivery_attempts")
    assert (attempt["status_code"], attempt["error"]) == (302, "HTTP 302")
    delivery = await db.fetchrow("SELECT status, attempts, last_status, next_attempt_at > now() AS later "
                                 "FROM webhook_deliveries")  # fmt: skip
    assert dict(delivery) == {"status": "pending", "attempts": 1, "last_status": 302, "later": True}


@pytest.mark.parametrize("attempts_so_far", [0, 1, 2, 5, 10, 30, 31, 1000])
def test_the_retry_delay_doubles_with_jitter_up_to_its_cap(attempts_so_far: int):
    base, cap = 5.0, 3600.0
    full = min(base * 2**attempts_so_far, cap)
    delays = [backoff_seconds(attempts_so_far, base, cap) for _ in range(200)]
    assert all(full / 2 <= delay <= full for delay in delays)  # half fixed, half random
    assert len(set(delays)) > 100  # spread out, not one value for every delivery


async def test_a_delivery_is_retried_for_three_days_then_given_up(services, db):
    async with webhook_receiver() as receiver:
        added = await webhook_endpoints.add(services, tenant_id="default", url=receiver.url)
        receiver.secrets, receiver.up = [added.secret], False
        async with transaction(services.pool) as conn:
            await outbox.record(conn, "default", "payment.succeeded", PaymentView.model_validate(_a_payment_view(1)))
        window = await db.fetchval("SELECT give_up_after - created_at FROM webhook_deliveries")
        assert abs(window - timedelta(days=3)) < timedelta(minutes=1)
        worker = Deliverer(services)
        try:
            assert await worker.deliver_due() == 1  # within the window: failed, retried later
            assert await db.fetchval("SELECT status FROM webhook_deliveries") == "pending"
            await db.execute("UPDATE webhook_deliveries SET next_attempt_at = now(), give_up_after = now()")
            assert await worker.deliver_due() == 1  # its next retry would fall after the window
            assert await worker.deliver_due() == 0
        finally:
            await worker.close()
    delivery = await db.fetchrow("SELECT status, attempts, last_error FROM webhook_deliveries")
    assert dict(delivery) == {"status": "gave_up", "attempts": 2, "last_error": "HTTP 503"}


async def test_a_failing_endpoint_pauses_and_resumes_when_enabled(services, settings, db):
    impatient = settings.model_copy(update={"webhook_failing_after_seconds": 0, "webhook_failing_after_attempts": 2})
    async with webhook_receiver() as receiver, open_services(impatient) as opened:
        added = await webhook_endpoints.add(opened, tenant_id="default", url=receiver.url)
        receiver.secrets, receiver.up = [added.secret], False
        async with transaction(opened.pool) as conn:
            await outbox.record(conn, "default", "payment.succeeded", PaymentView.model_validate(_a_payment_view(1)))
        worker = Deliverer(opened)
        try:
            for _ in range(3):
                await db.execute("UPDATE webhook_deliveries SET next_attempt_at = now()")
                await worker.deliver_due()
            assert await db.fetchval("SELECT status FROM webhook_endpoints") == "failing"
            assert await db.fetchval("SELECT attempts FROM webhook_deliveries") == 2  # paused: not tried again
            receiver.up = True
            _, resumed = await webhook_endpoints.enable(opened, added.endpoint_id, tenant_id=None)
            assert resumed == 1 and await worker.deliver_due() == 1
        finally:
            await worker.close()
    assert len(receiver.events) == 1
    assert await db.fetchval("SELECT status FROM webhook_endpoints") == "enabled"


async def test_the_endpoints_commands_say_what_an_endpoint_does_and_what_was_queued(services, database_url, db):
    added = await webhook_endpoints.add(services, tenant_id="default", url="http://127.0.0.1:9/hooks")
    async with transaction(services.pool) as conn:
        event_id = await outbox.record(
            conn, "default", "payment.succeeded", PaymentView.model_validate(_a_payment_view(1))
        )

    async def listed() -> str:  # the endpoint's state, as `endpoints list` says it
        code, out = await paywarden_command(database_url, "endpoints", "list")
        assert code == 0, out
        return out.split(" tenant=default ")[1].split(" url=")[0]

    await db.execute("UPDATE webhook_endpoints SET failing_since = '2030-01-02 03:04Z', failures_in_a_row = 1")
    assert await listed() == "enabled, last attempts failing since 2030-01-02 03:04"
    await db.execute("UPDATE webhook_endpoints SET status = 'failing'")
    assert await listed() == "failing since 2030-01-02 03:04, paused until `paywarden endpoints enable`"
    code, out = await paywarden_command(database_url, "endpoints", "enable", added.endpoint_id)
    assert (code, out) == (0, f"{added.endpoint_id} enabled; 1 waiting delivery goes out now\n")
    assert await listed() == "enabled"
    assert (await paywarden_command(database_url, "endpoints", "disable", added.endpoint_id))[0] == 0
    assert await listed() == "disabled, paused until `paywarden endpoints enable`"
    code, out = await paywarden_command(database_url, "endpoints", "redeliver", event_id)
    assert code == 0 and f"Event {event_id} is queued again for 1 endpoint(s), paused: it goes out once" in out
    assert (await paywarden_command(database_url, "endpoints", "remove", added.endpoint_id))[0] == 0
    code, out = await paywarden_command(database_url, "endpoints", "redeliver", event_id)
    assert code == 1 and out.startswith(f"paywarden: Nothing was queued: no endpoint would receive event {event_id!r}")
    assert "`paywarden endpoints add --tenant default URL`" in out


async def test_a_rotated_secret_signs_beside_the_old_one_during_the_overlap(services):
    added = await webhook_endpoints.add(services, tenant_id="default", url="http://127.0.0.1:9/hooks")
    rotated = await webhook_endpoints.rotate_secret(services, added.endpoint_id, tenant_id=None, overlap_hours=1)
    async with transaction(services.pool) as conn:
        claimed = await _claim_one(conn, services)
    headers = signed_headers(claimed.event_id, "{}", claimed.secrets, _now())
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (added.secret, rotated.secret):
        Webhook(secret).verify("{}", headers)


async def _claim_one(conn, services):
    await outbox.record(conn, "default", "payment.succeeded", PaymentView.model_validate(_a_payment_view(1)))
    return (await rows.claim_due(conn, 1, 60))[0]


def _now():
    return datetime.now(UTC)


async def test_webhook_endpoints_over_http_are_the_tenants_own(app, database_url, api_key):
    other = await new_key(database_url, tenant_id="acme")
    async with api_client(app.base_url, api_key) as http:
        created = await http.post("/v1/webhook_endpoints", json={"url": "http://127.0.0.1:9/h", "event_types":
                                  ["payment.succeeded"]})  # fmt: skip
        endpoint = created.json()
        assert created.status_code == 201 and endpoint["secret"].startswith("whsec_")
        listed = (await http.get("/v1/webhook_endpoints")).json()["endpoints"]
        assert [e["endpoint_id"] for e in listed] == [endpoint["endpoint_id"]] and "secret" not in listed[0]
        bad = await http.post("/v1/webhook_endpoints", json={"url": "http://127.0.0.1:9/h", "event_types": ["x"]})
        assert_problem(bad, 422, "invalid_parameter", "event_types.0")
    async with api_client(app.base_url, other) as http:
        assert (await http.get("/v1/webhook_endpoints")).json()["endpoints"] == []
        gone = await http.delete(f"/v1/webhook_endpoints/{endpoint['endpoint_id']}")
        assert_problem(gone, 404, "webhook_endpoint_not_found")
    async with api_client(app.base_url, api_key) as http:
        removed = await http.delete(f"/v1/webhook_endpoints/{endpoint['endpoint_id']}")
        assert removed.status_code == 200 and removed.json()["removed_at"] is not None
        assert (await http.get("/v1/webhook_endpoints")).json()["endpoints"] == []


async def test_the_endpoints_commands(app, database_url, db):
    async with webhook_receiver() as receiver:
        code, out = await paywarden_command(
            database_url, "endpoints", "add", "--tenant", "default", receiver.url, "--events", "payment.succeeded",
            allow_private_webhook_urls="true",
        )  # fmt: skip
        assert code == 0 and "whsec_" in out and "only time the secret is shown" in out
        endpoint_id = out.split()[0]
        receiver.secrets = [next(word for word in out.split() if word.startswith("whsec_"))]
        code, out = await paywarden_command(database_url, "endpoints", "list")
        assert endpoint_id in out and "enabled" in out and "events=payment.succeeded" in out
        receiver.up = False
        async with transaction(app.services.pool) as conn:
            event_id = await outbox.record(conn, "default", "payment.succeeded",
                                           PaymentView.model_validate(_a_payment_view(7)))  # fmt: skip
        await eventually(lambda: db.fetchval("SELECT attempts > 0 FROM webhook_deliveries"))
        code, out = await paywarden_command(database_url, "endpoints", "deliveries", endpoint_id, "--failed")
        assert code == 0 and event_id in out and "HTTP 503" in out
        receiver.up = True
        await eventually(lambda: receiver.events)
        code, out = await paywarden_command(database_url, "endpoints", "redeliver", event_id)
        assert code == 0 and "queued again for 1 endpoint(s); it goes out within seconds." in out
        await eventually(lambda: len(receiver.events) == 2)
        assert receiver.ids() == {event_id: 2}  # the same webhook-id: the receiver can tell it is a repeat
        code, out = await paywarden_command(database_url, "endpoints", "rotate-secret", endpoint_id)
        assert code == 0 and "previous one also signs until" in out
        for action in ("disable", "enable", "remove"):
            code, out = await paywarden_command(database_url, "endpoints", action, endpoint_id)
            assert code == 0, out
        code, out = await paywarden_command(database_url, "endpoints", "remove", endpoint_id)
        assert code == 1 and "No webhook endpoint" in out
