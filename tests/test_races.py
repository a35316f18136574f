"""Orderings that real networks produce: the webhook before the provider's answer, many grants at once,
and money taken for a payment already closed."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from itertools import pairwise

import asyncpg
import stripe

from server import charges
from server.charges import ChargeInput
from server.reconciler import reconcile_once, running_in_background
from server.services import open_services
from server.tenancy import DEFAULT_TENANT
from tests.helpers import LOCAL, call, eventually, intent_event, signed
from tests.helpers import post_webhook as post

PAID_NOW = {"product_id": "day_pass", "payment_method": "pm_card_visa"}


def request(key: str, customer: str = "cus_race") -> ChargeInput:
    return ChargeInput(
        customer_id=customer, idempotency_key=key, product_id="pro_monthly", payment_method="pm_card_visa", caller=LOCAL
    )


async def test_a_webhook_that_arrives_before_the_providers_answer(app, db: asyncpg.Connection) -> None:
    services = app.services
    new = charges.price(request("early"), services.catalog, services.provider)
    payment, _ = await charges.record(services, request("early"), new, "not_asked")
    reported = {"payment_id": payment.id, "provider_payment_id": "pi_early", "amount_minor": 2000, "currency": "USD"}
    body = intent_event("payment_intent.succeeded", reported, event_id="evt_early")
    assert (await post(app, body, signed(body))).json()["outcome"] == "applied"

    answered = await charges.submit(services, payment)  # the synchronous answer, late
    assert answered.status == "succeeded"
    actors = await db.fetch("SELECT actor, to_status FROM payment_audit ORDER BY id")
    assert [(row["actor"], row["to_status"]) for row in actors] == [("agent", "created"), ("webhook", "succeeded")]
    assert await db.fetchval("SELECT count(*) FROM entitlements") == 1


async def test_concurrent_grants_for_one_customer_stack_without_overlap(app, db: asyncpg.Connection) -> None:
    async with open_services(app.settings.model_copy(update={"duplicate_window_seconds": 0})) as services:
        recorded = []
        for n in range(8):
            new = charges.price(request(f"g{n}"), services.catalog, services.provider)
            recorded.append((await charges.record(services, request(f"g{n}"), new, "not_asked"))[0])
    bodies = []
    for n, payment in enumerate(recorded):
        reported = {
            "payment_id": payment.id,
            "provider_payment_id": f"pi_g{n}",
            "amount_minor": 2000,
            "currency": "USD",
        }
        bodies.append(intent_event("payment_intent.succeeded", reported, event_id=f"evt_g{n}"))
    responses = await asyncio.gather(*(post(app, body, signed(body)) for body in bodies))
    assert all(response.json()["outcome"] == "applied" for response in responses)
    periods = await db.fetch("SELECT starts_at, expires_at FROM entitlements ORDER BY starts_at")
    assert len(periods) == 8
    for earlier, later in pairwise(periods):
        assert later["starts_at"] == earlier["expires_at"]
    assert periods[-1]["expires_at"] - periods[0]["starts_at"] == timedelta(days=240)


async def test_a_declined_payment_is_closed_at_the_provider(app, mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        failed = await call(
            client,
            "create_charge",
            customer_id="cus_d",
            idempotency_key="d",
            product_id="pro_monthly",
            payment_method="pm_card_chargeDeclined",
        )
    assert failed["status"] == "failed"
    intent_status = await db.fetchval(
        "SELECT object->>'status' FROM sandbox.payment_intents WHERE id = $1", failed["provider_payment_id"]
    )
    assert intent_status == "canceled"
    sandbox = stripe.StripeClient(
        app.services.sandbox.api_key,
        base_addresses={"api": f"{app.base_url}/sandbox"},
        http_client=stripe.HTTPXClient(),
    )
    try:
        await sandbox.v1.payment_intents.confirm_async(
            failed["provider_payment_id"], {"payment_method": "pm_card_visa"}
        )
        raise AssertionError("a closed payment must not be payable")
    except stripe.InvalidRequestError as error:
        assert "canceled" in str(error)


async def test_money_taken_after_a_payment_was_closed_is_flagged(app, mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        failed = await call(
            client,
            "create_charge",
            customer_id="cus_d",
            idempotency_key="late",
            product_id="pro_monthly",
            payment_method="pm_card_chargeDeclined",
        )
    reported = {**failed, "amount_minor": 2000, "currency": "USD"}
    body = intent_event("payment_intent.succeeded", reported, event_id="evt_late")
    answer = (await post(app, body, signed(body))).json()
    assert answer["outcome"] == "needs_attention" and "refund it" in answer["note"]
    assert await db.fetchval("SELECT status FROM payments") == "failed"
    assert await db.fetchval("SELECT count(*) FROM entitlements") == 0


async def test_the_reconciler_alone_settles_payments_whose_webhooks_never_came(app, db) -> None:
    quiet = app.settings.model_copy(update={"reconcile_after_seconds": 0})
    async with open_services(quiet) as services:
        needs_person = ChargeInput(
            customer_id="cus_q",
            idempotency_key="r1",
            product_id="pro_monthly",
            payment_method="pm_card_authenticationRequired",
            caller=LOCAL,
        )
        payment = await charges.charge(services, needs_person)
        assert payment.status == "requires_action"
        await db.execute("DELETE FROM sandbox.deliveries")  # its webhooks are lost…
        await db.execute(  # …and the person pays at the provider
            """UPDATE sandbox.payment_intents SET object = jsonb_set(object, '{status}', '"succeeded"')
               WHERE id = $1""",
            payment.provider_payment_id,
        )
        report = await reconcile_once(services)
        again = await reconcile_once(services)
    assert report.updated == [payment.payment_id] and again.updated == []
    assert await db.fetchval("SELECT status FROM payments") == "succeeded"
    assert await db.fetchval("SELECT actor FROM payment_audit ORDER BY id DESC LIMIT 1") == "reconciler"
    await eventually(lambda: _entitled(db))


async def _entitled(db: asyncpg.Connection) -> bool:
    return await db.fetchval("SELECT count(*) FROM entitlements") == 1


async def test_a_refund_reported_before_the_success_still_ends_refunded(app, db: asyncpg.Connection) -> None:
    new = charges.price(request("rb"), app.services.catalog, app.services.provider)
    payment, _ = await charges.record(app.services, request("rb"), new, "not_asked")
    await db.execute("UPDATE payments SET provider_payment_id = 'pi_rb' WHERE id = $1", payment.id)
    refund = {
        "id": "re_rb",
        "object": "refund",
        "amount": 2000,
        "currency": "usd",
        "status": "succeeded",
        "payment_intent": "pi_rb",
        "metadata": {},
    }
    refund_body = json.dumps({"id": "evt_rb1", "type": "refund.created", "data": {"object": refund}})
    reported = {"payment_id": payment.id, "provider_payment_id": "pi_rb", "amount_minor": 2000, "currency": "USD"}
    success_body = intent_event("payment_intent.succeeded", reported, event_id="evt_rb2")
    for body in (refund_body, success_body):
        assert (await post(app, body, signed(body))).status_code == 200
    assert await db.fetchval("SELECT status FROM payments") == "refunded"
    assert await db.fetchval("SELECT count(*) FROM entitlements WHERE revoked_at IS NULL") == 0


async def test_paywarden_up_reconciles_in_the_background(settings, listening_socket, db) -> None:
    from mcp import Client

    from tests.helpers import serving
    from tools.server import build_server
    from webapp.app import build_webapp

    quick = settings.model_copy(
        update={"reconcile_interval_seconds": 0.2, "reconcile_after_seconds": 0, "sandbox_deliver_webhooks": False}
    )
    async with (
        open_services(quick, serve_sandbox=True) as services,
        serving(build_webapp(services, mcp=build_server(services)), listening_socket),
        running_in_background(services),
        Client(build_server(services, local_tenant=DEFAULT_TENANT)) as client,
    ):
        waiting = await call(
            client,
            "create_charge",
            customer_id="cus_bg",
            idempotency_key="bg",
            product_id="pro_monthly",
            payment_method="pm_card_authenticationRequired",
        )
        await db.execute("""UPDATE sandbox.payment_intents SET object = jsonb_set(object, '{status}', '"succeeded"')""")
        await eventually(lambda: _status_is(db, waiting["payment_id"], "succeeded"))
    assert await db.fetchval("SELECT actor FROM payment_audit ORDER BY id DESC LIMIT 1") == "reconciler"


async def _status_is(db: asyncpg.Connection, payment_id: str, status: str) -> bool:
    return await db.fetchval("SELECT status FROM payments WHERE id = $1", payment_id) == status


async def test_a_success_the_provider_does_not_show_is_flagged_by_the_reconciler(app, mcp, db) -> None:
    """A correctly signed but mistaken (or forged, with a leaked secret) success: the next pass checks it
    against the provider's own record and flags it for an operator, with both sides."""
    async with mcp() as client:
        waiting = await call(client, "create_charge", customer_id="cus_v", idempotency_key="v", product_id="day_pass")
    forged = intent_event("payment_intent.succeeded", waiting, event_id="evt_forged")
    assert (await post(app, forged, signed(forged))).json()["outcome"] == "applied"
    report = await reconcile_once(app.services)
    again = await reconcile_once(app.services)
    assert len(report.attention) == 1 and again.attention == [] and again.verified == 0
    note = await db.fetchval("SELECT attention FROM payments")
    assert "recorded 3.00 USD as succeeded; the provider shows requires_action" in note
    assert await db.fetchval("SELECT actor FROM payment_audit ORDER BY id DESC LIMIT 1") == "reconciler"


async def test_a_paid_success_is_confirmed_once(app, mcp, db) -> None:
    async with mcp() as client:
        await call(client, "create_charge", customer_id="cus_ok", idempotency_key="ok", **PAID_NOW)
    report = await reconcile_once(app.services)
    assert report.verified == 1 and report.attention == []
    assert await db.fetchval("SELECT verified_at IS NOT NULL AND attention IS NULL FROM payments")
    assert (await reconcile_once(app.services)).verified == 0


async def test_with_confirmation_on_a_success_is_applied_only_if_the_provider_shows_it(app, mcp, db) -> None:
    from server import inbox
    from server.providers.stripe import event_from_payload

    async with mcp() as client:
        waiting = await call(client, "create_charge", customer_id="cus_c", idempotency_key="c", product_id="day_pass")
    forged = event_from_payload(json.loads(intent_event("payment_intent.succeeded", waiting, event_id="evt_c1")))
    careful = app.settings.model_copy(update={"webhook_confirm_with_provider": True})
    async with open_services(careful) as services:
        result = await inbox.ingest(services, forged)
    assert result.outcome == "ignored" and await db.fetchval("SELECT status FROM payments") == "requires_action"


async def test_one_failing_step_does_not_stop_the_others(app, db) -> None:
    away = app.settings.model_copy(update={"stripe_api_base": "http://127.0.0.1:1/sandbox", "approval_expiry_hours": 1})
    await db.execute(
        "INSERT INTO payments (id, tenant_id, customer_id, amount_minor, currency, provider, status, updated_at)"
        " VALUES ('pay_0000000000000000000000aa', 'default', 'c', 100, 'USD', 'sandbox', 'requires_approval',"
        " now() - interval '2 hours')"
    )
    async with open_services(away) as services:
        report = await reconcile_once(services)
    assert report.steps["provider event list"].startswith("failed: the payment provider did not answer")
    assert report.steps["held charges"] == "ok" and report.expired == ["pay_0000000000000000000000aa"]
