"""The webhook sidecar over real HTTP with real Stripe signatures."""

from __future__ import annotations

import json
import time

import asyncpg
import pytest

from tests.helpers import WEBHOOK_SECRET, call, database_refusing_connections, intent_event, local_http, signed
from tests.helpers import post_webhook as post


@pytest.fixture
async def open_payment(mcp) -> dict:
    """A payment waiting for the person (requires_action), so events can move it."""
    async with mcp() as client:
        return await call(client, "create_charge", customer_id="cus_w", idempotency_key="w1", product_id="pro_monthly")


async def inbox(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return await db.fetch("SELECT event_id, event_type, outcome, note FROM webhook_events WHERE event_id LIKE 'evt_t%'")


async def status(db: asyncpg.Connection, payment_id: str) -> str:
    return await db.fetchval("SELECT status FROM payments WHERE id = $1", payment_id)


async def test_a_signed_event_is_stored_and_applied_once(app, db, open_payment) -> None:
    body = intent_event("payment_intent.succeeded", open_payment, event_id="evt_t1")
    first = await post(app, body, signed(body))
    again = await post(app, body, signed(body))
    assert first.status_code == 200 and first.json()["outcome"] == "applied"
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert [row["outcome"] for row in await inbox(db)] == ["applied"]
    assert await status(db, open_payment["payment_id"]) == "succeeded"
    assert await db.fetchval("SELECT count(*) FROM entitlements") == 1
    audit_rows = await db.fetchval("SELECT count(*) FROM payment_audit WHERE actor = 'webhook'")
    assert audit_rows == 1


@pytest.mark.parametrize(
    ("make_headers", "expected"),
    [
        (lambda body: {"Content-Type": "application/json"}, "Missing Stripe-Signature"),
        (lambda body: signed(body, secret="whsec_forged"), "Invalid Stripe-Signature"),
        (lambda body: signed(body, at=int(time.time()) - 301), "Stale Stripe-Signature"),
        (lambda body: signed(body, at=int(time.time()) + 400), "Stale Stripe-Signature"),
        (lambda body: {"Stripe-Signature": "garbage", "Content-Type": "application/json"}, "Malformed"),
        (lambda body: signed(body + " "), "Invalid Stripe-Signature"),
    ],
)
async def test_bad_signatures_get_400_and_store_nothing(app, db, open_payment, make_headers, expected) -> None:
    body = intent_event("payment_intent.succeeded", open_payment, event_id="evt_t2")
    response = await post(app, body, make_headers(body))
    assert response.status_code == 400
    assert expected in response.json()["error"]["message"]
    assert WEBHOOK_SECRET not in response.text
    assert await inbox(db) == []
    assert await status(db, open_payment["payment_id"]) == "requires_action"


async def test_out_of_order_events_never_move_a_payment_backwards(app, db, open_payment) -> None:
    succeeded = intent_event("payment_intent.succeeded", open_payment, event_id="evt_t3")
    late_processing = intent_event("payment_intent.processing", open_payment, event_id="evt_t4")
    late_failure = intent_event(
        "payment_intent.payment_failed", open_payment, event_id="evt_t5", last_payment_error={"message": "declined"}
    )
    for body in (succeeded, late_processing, late_failure):
        assert (await post(app, body, signed(body))).status_code == 200
    outcomes = {row["event_id"]: (row["outcome"], row["note"]) for row in await inbox(db)}
    assert outcomes["evt_t3"][0] == "applied"
    assert outcomes["evt_t4"] == ("ignored", "out of order: payment is succeeded and cannot move to processing")
    assert outcomes["evt_t5"][0] == "ignored"
    assert await status(db, open_payment["payment_id"]) == "succeeded"


async def test_an_event_type_it_does_not_handle_is_stored_and_acknowledged(app, db) -> None:
    body = json.dumps({"id": "evt_t6", "object": "event", "type": "customer.created", "data": {"object": {}}})
    response = await post(app, body, signed(body))
    assert response.status_code == 200
    assert [(row["event_type"], row["outcome"]) for row in await inbox(db)] == [("customer.created", "unhandled")]


async def test_an_event_for_a_different_amount_grants_nothing(app, db, open_payment) -> None:
    body = intent_event("payment_intent.succeeded", open_payment, event_id="evt_t7", amount=1)
    response = await post(app, body, signed(body))
    assert response.status_code == 200 and response.json()["outcome"] == "rejected"
    assert "amount differs" in response.json()["note"]
    assert await status(db, open_payment["payment_id"]) == "requires_action"
    assert await db.fetchval("SELECT count(*) FROM entitlements") == 0


async def test_an_event_for_a_payment_we_do_not_know_is_acknowledged(app, db) -> None:
    stranger = {
        "payment_id": "pay_ffffffffffffffffffffffff",
        "provider_payment_id": "pi_x",
        "amount_minor": 5,
        "currency": "USD",
    }
    body = intent_event("payment_intent.succeeded", stranger, event_id="evt_t8")
    response = await post(app, body, signed(body))
    assert response.status_code == 200 and response.json()["outcome"] == "unmatched"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2, 3]", "not a Stripe event"),
        (json.dumps({"id": 5, "type": "x"}), "not a Stripe event"),
    ],
)
async def test_a_signed_but_malformed_body_is_refused_and_kept_as_rejected(app, db, body: str, expected: str) -> None:
    response = await post(app, body, signed(body))
    message = response.json()["error"]["message"]
    assert response.status_code == 400 and expected in message and "stored as rejected (malformed_" in message
    row = await db.fetchrow("SELECT event_type, outcome, note, payload FROM webhook_events")
    assert (row["event_type"], row["outcome"]) == ("malformed", "rejected") and expected in row["note"]
    assert json.loads(row["payload"]) == {"raw": body}


DEEP = '{"id": "evt_deep", "type": "x", "data": ' + "[" * 2000 + "]" * 2000 + "}"
WRONG_TYPES = json.dumps(
    {
        "id": "evt_types",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_1", "amount": 300, "currency": "usd", "metadata": ["payment_id", "pay_1"]}},
    }
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (DEEP, "nested too deeply"),
        ('{"id": "evt_nul", "type": "customer.created", "data": {"object": {"name": "a\\u0000b"}}}', "NUL"),
        ('{"id": "evt_surrogate", "type": "customer.created", "data": {"object": {"name": "\\ud800"}}}', "surrogate"),
        (WRONG_TYPES, "not of the types Stripe sends"),
    ],
)
async def test_a_signed_body_that_cannot_be_handled_gets_400_and_is_kept(app, db, body: str, expected: str) -> None:
    response = await post(app, body, signed(body))
    assert response.status_code == 400 and expected in response.json()["error"]["message"]
    row = await db.fetchrow("SELECT event_type, outcome, note FROM webhook_events")
    assert (row["event_type"], row["outcome"]) == ("malformed", "rejected") and expected in row["note"]


async def test_an_unsigned_malformed_body_is_not_kept(app, db) -> None:
    response = await post(app, "{not json", signed("{not json", secret="whsec_forged"))
    assert response.status_code == 400
    assert await db.fetchval("SELECT count(*) FROM webhook_events") == 0


async def test_several_secrets_are_accepted_while_one_is_rotated(app, db, settings) -> None:
    from server.providers import Credentials, open_provider

    provider = open_provider(settings, Credentials("sk_test_unused", "whsec_new, whsec_test_secret"))
    body = json.dumps({"id": "evt_rot", "type": "customer.created", "data": {"object": {}}})
    for secret in ("whsec_new", "whsec_test_secret"):
        header = signed(body, secret=secret)["Stripe-Signature"]
        assert provider.verify_webhook(body.encode(), header).event_id == "evt_rot"
    with pytest.raises(Exception, match="Invalid Stripe-Signature"):
        provider.verify_webhook(body.encode(), signed(body, secret="whsec_old")["Stripe-Signature"])
    stale = signed(body, secret="whsec_new", at=int(time.time()) - 1000)["Stripe-Signature"]
    with pytest.raises(Exception, match="Stale"):
        provider.verify_webhook(body.encode(), stale)
    await provider.close()


async def test_a_huge_body_is_refused_before_it_is_read(app, db) -> None:
    body = json.dumps({"id": "evt_t9", "type": "x", "padding": "x" * (1024 * 1024)})
    response = await post(app, body, signed(body))
    assert response.status_code == 413
    assert await db.fetchval("SELECT count(*) FROM webhook_events") == 0


async def test_a_body_that_is_not_json_by_its_content_type_is_refused(app, db) -> None:
    body = json.dumps({"id": "evt_t10", "type": "x"})
    response = await post(app, body, {**signed(body), "Content-Type": "text/plain"})
    assert response.status_code == 415 and "application/json" in response.json()["error"]["message"]
    assert await db.fetchval("SELECT count(*) FROM webhook_events") == 0


async def test_while_the_database_is_down_webhooks_get_503_and_readyz_fails(
    app, db, database_url, owner_database_url
) -> None:
    body = json.dumps({"id": "evt_t11", "type": "customer.created", "data": {"object": {}}})
    async with database_refusing_connections(owner_database_url), local_http(base_url=app.base_url) as http:
        ready = await http.get("/readyz")
        alive = await http.get("/healthz")
        hook = await http.post("/webhooks/stripe", content=body, headers=signed(body))
    assert (ready.status_code, alive.status_code, hook.status_code) == (503, 200, 503)
    assert "database is not answering" in hook.json()["error"]["message"]
    async with local_http(base_url=app.base_url) as http:  # the provider retries: now it lands
        again = await http.post("/webhooks/stripe", content=body, headers=signed(body))
    assert again.status_code == 200
    fresh = await asyncpg.connect(database_url)
    assert await fresh.fetchval("SELECT count(*) FROM webhook_events WHERE event_id = 'evt_t11'") == 1
    await fresh.close()
