"""A charge without a payment method: the person pays on a Checkout Session's page, through the real Stripe
adapter against the sandbox; the page's events and its payment intent's move the payment once, in any order."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
from mcp import Client

from server.config import Settings
from tests.helpers import (
    call,
    click,
    eventually,
    local_http,
    local_mcp,
    post_webhook,
    running_app,
    sandbox_client,
    sent_to_sandbox,
    signed,
)


@pytest.fixture
async def public(settings: Settings, listening_socket: socket.socket) -> AsyncIterator[Any]:
    """The app with PAYWARDEN_PUBLIC_URL set, as it runs for real Stripe: the pages send people back there."""
    with_pages = settings.model_copy(update={"public_url": settings.base_url})
    async with running_app(with_pages, listening_socket) as services:
        yield SimpleNamespace(services=services, settings=services.settings, base_url=services.settings.base_url)


async def test_the_person_pays_on_a_checkout_page_made_with_stripes_parameters(public, db) -> None:
    async with local_mcp(public.settings) as client:
        charge = await call(client, "create_charge", customer_id="ann", idempotency_key="k1", product_id="pro_monthly")
        assert charge["status"] == "requires_action" and charge["provider_payment_id"] is None
        assert charge["next_action_url"].startswith(f"{public.settings.base_url}/sandbox/checkout/cs_test_")

        back = await click(charge["next_action_url"], "Pay")
        assert "Payment submitted" in back  # Checkout sent the person to success_url
        paid = await eventually(lambda: _status(client, charge["payment_id"], "succeeded"))
        assert paid["provider_payment_id"].startswith("pi_")

    [session] = await sent_to_sandbox(db, "POST", "/v1/checkout/sessions")
    params, base = session["params"], public.settings.base_url
    charged_at = await db.fetchval("SELECT floor(extract(epoch FROM charged_at))::bigint FROM payments")
    metadata = {"payment_id": charge["payment_id"], "customer_id": "ann", "product_id": "pro_monthly"}
    assert session["idempotency_key"] == charge["payment_id"]
    assert params == {
        "mode": "payment",
        "line_items": {"0": {"price_data": {"currency": "usd", "unit_amount": "2000",
                                            "product_data": {"name": "Pro, 30 days"}}, "quantity": "1"}},
        "allowed_payment_method_types": {"0": "card"},
        "client_reference_id": charge["payment_id"],
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata, "description": "Pro, 30 days"},
        "expires_at": str(charged_at + 24 * 3600),
        "success_url": f"{base}/payments/complete",
        "cancel_url": f"{base}/payments/canceled",
    }  # fmt: skip
    intent = await sandbox_client(public).v1.payment_intents.retrieve_async(paid["provider_payment_id"])
    assert intent.metadata.to_dict() == metadata  # our payment id is on the payment intent Checkout made too


async def test_a_page_that_expires_cancels_the_payment(app, mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        charge = await call(client, "create_charge", customer_id="bea", idempotency_key="k1", product_id="day_pass")
        await click(charge["next_action_url"], "Use a declined card")  # an attempt that leaves the page open
        await db.execute(
            "UPDATE sandbox.objects SET object = jsonb_set(object, '{expires_at}', to_jsonb(1)) WHERE type = $1",
            "checkout.session",
        )  # its time runs out: the sandbox expires it, as Stripe does
        canceled = await eventually(lambda: _status(client, charge["payment_id"], "canceled"))
        entitlement = await call(client, "check_entitlement", customer_id="bea", feature="pro")
    assert canceled["failure_reason"] == "the payment page expired before the person paid"
    assert entitlement["allowed"] is False
    async with local_http() as browser:
        assert "This checkout has expired" in (await browser.get(charge["next_action_url"])).text


async def test_the_pages_events_and_its_intents_apply_once_in_any_order(settings, listening_socket, db) -> None:
    quiet = settings.model_copy(update={"sandbox_deliver_webhooks": False, "reconcile_interval_seconds": 0})
    async with running_app(quiet, listening_socket) as services, local_mcp(quiet) as client:
        charge = await call(client, "create_charge", customer_id="cid", idempotency_key="k1", product_id="day_pass")
        await click(charge["next_action_url"], "Use a declined card")
        await click(charge["next_action_url"], "Pay")
        sent = [row["payload"] for row in await db.fetch("SELECT payload FROM sandbox.events ORDER BY seq")]
        endpoint = SimpleNamespace(base_url=services.settings.base_url)
        outcomes = {}
        for payload in reversed(sent):  # the page's completion first, the declined attempt last
            answer = await post_webhook(endpoint, payload, signed(payload))
            outcomes[json.loads(payload)["type"]] = answer.json()["outcome"]
        again = await post_webhook(endpoint, sent[-1], signed(sent[-1]))
        paid = await call(client, "get_payment", payment_id=charge["payment_id"])
    assert outcomes == {
        "checkout.session.completed": "applied",
        "payment_intent.succeeded": "ignored",
        "payment_intent.payment_failed": "ignored",
        "payment_intent.created": "unhandled",
    }
    assert again.json()["outcome"] == "duplicate"
    assert paid["status"] == "succeeded" and [s["to_status"] for s in paid["timeline"]].count("succeeded") == 1
    assert paid["provider_payment_id"].startswith("pi_")  # learnt from the page's event


@pytest.mark.parametrize(
    ("events", "final"),
    [
        (["completed_unpaid", "async_payment_succeeded"], "succeeded"),
        (["completed_unpaid", "async_payment_failed"], "failed"),
        (["async_payment_succeeded", "completed_unpaid"], "succeeded"),  # out of order: the later one is ignored
        (["expired", "completed_paid"], "canceled"),
    ],
)
async def test_a_delayed_payment_on_the_page_settles_by_its_events(app, mcp, events: list[str], final: str) -> None:
    async with mcp() as client:
        charge = await call(client, "create_charge", customer_id="dee", idempotency_key="k1", product_id="day_pass")
        session = (await sandbox_client(app).v1.checkout.sessions.retrieve_async(_session_id(charge))).to_dict()
        for n, kind in enumerate(events):
            body = _page_event(kind, session, f"evt_{kind}_{n}")
            assert (await post_webhook(app, body, signed(body))).status_code == 200
        settled = await call(client, "get_payment", payment_id=charge["payment_id"])
    assert settled["status"] == final
    moves = [step["to_status"] for step in settled["timeline"]]
    assert moves.count(final) == 1


def _page_event(kind: str, session: dict, event_id: str) -> str:
    state = {
        "completed_unpaid": ("checkout.session.completed", {"status": "complete", "payment_status": "unpaid"}),
        "completed_paid": ("checkout.session.completed", {"status": "complete", "payment_status": "paid"}),
        "async_payment_succeeded": ("checkout.session.async_payment_succeeded",
                                    {"status": "complete", "payment_status": "paid"}),
        "async_payment_failed": ("checkout.session.async_payment_failed",
                                 {"status": "complete", "payment_status": "unpaid"}),
        "expired": ("checkout.session.expired", {"status": "expired"}),
    }[kind]  # fmt: skip
    event_type, fields = state
    return json.dumps({"id": event_id, "object": "event", "type": event_type,
                       "data": {"object": {**session, **fields}}})  # fmt: skip


def _session_id(charge: dict) -> str:
    return charge["next_action_url"].rsplit("/", 1)[1]


async def test_a_setup_page_that_expires_saves_nothing(app, mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        setup = await call(client, "setup_payment_method", customer_id="eve", idempotency_key="s1")
        await sandbox_client(app).v1.checkout.sessions.expire_async(setup["setup_url"].rsplit("/", 1)[1])
        await eventually(lambda: _setup_status(db, setup["setup_id"], "canceled"))
        again = await call(client, "setup_payment_method", customer_id="eve", idempotency_key="s1")
        view = await call(client, "get_customer", customer_id="eve")
    assert again["status"] == "canceled" and again["setup_url"] is None and "NEW idempotency_key" in again["next_step"]
    assert view["payment_methods"] == []


async def _setup_status(db: asyncpg.Connection, setup_id: str, status: str) -> bool:
    return await db.fetchval("SELECT status FROM payment_setups WHERE id = $1", setup_id) == status


async def _status(client: Client, payment_id: str, wanted: str) -> dict | None:
    payment = await call(client, "get_payment", payment_id=payment_id)
    return payment if payment["status"] == wanted else None
