"""A card the person saves becomes the card their subscriptions charge: a past-due renewal is paid with it at once
and access recovers without waiting for the provider's next retry. Real PostgreSQL, the real Stripe adapter
against the sandbox, real signed webhooks delivered over HTTP, the person on the sandbox's setup page."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from mcp import Client

from server import reconciler
from server.errors import ProviderUnavailable
from tests.helpers import (
    all_events_delivered,
    call,
    eventually,
    local_http,
    provider_subscription,
    save_card,
    sent_to_sandbox,
    settled,
    to_period_end,
)

PLAN = {"customer_id": "ada", "product_id": "pro_ai_monthly"}


@pytest.fixture
async def app(app, owner_database_url: str):
    """The running app; the test ends once the sandbox has delivered every event it emitted."""
    yield app
    await all_events_delivered(owner_database_url)


async def start(client: Client) -> dict:
    started = await call(client, "start_subscription", **PLAN, idempotency_key="s1", payment_method="pm_card_visa")
    assert started["status"] == "active"
    return started


async def saved(client: Client, card: str, key: str) -> str:
    """The person saves `card` on the setup page; the payment method it became at the provider (a new one)."""
    before = {method["payment_method_id"] for method in await _cards(client)}
    await save_card(client, "ada", card, key=key)

    async def new_default() -> str | None:
        found = [m["payment_method_id"] for m in await _cards(client) if m["is_default"]]
        return found[0] if found and found[0] not in before else None

    return await eventually(new_default)


async def _cards(client: Client) -> list[dict]:
    return (await call(client, "get_customer", customer_id="ada"))["payment_methods"]


async def provider_customer(app: Any, provider_customer_id: str) -> dict:
    async with local_http(base_url=f"{app.base_url}/sandbox") as http:
        answer = await http.get(
            f"/v1/customers/{provider_customer_id}", headers={"Authorization": f"Bearer {app.services.sandbox.api_key}"}
        )
    return answer.json()


async def charges_to(app: Any, provider_subscription_id: str, card: str) -> None:
    """Wait until the provider's subscription charges `card` (told once the setup's event was applied)."""

    async def check() -> bool:
        return (await provider_subscription(app, provider_subscription_id))["default_payment_method"] == card

    await eventually(check)


async def test_a_card_saved_while_past_due_pays_the_open_invoice_at_once_and_the_renewals_after(
    app, mcp, db: asyncpg.Connection
) -> None:
    async with mcp() as client:
        started = await start(client)
        provider_id = started["provider_subscription_id"]
        failing = await saved(client, "pm_card_chargeCustomerFail", "setup-1")  # the card every charge of fails
        await charges_to(app, provider_id, failing)
        await to_period_end(app, started["current_period_end"])
        overdue = await settled(client, started["subscription_id"], status="past_due", invoices=1)
        assert "setup_payment_method" in overdue["next_step"] and "at once" in overdue["next_step"]
        grace = await call(client, "check_entitlement", customer_id="ada", feature="pro")
        assert grace["allowed"] is True and grace["reason"] == "past_due"
        open_invoice = (await provider_subscription(app, provider_id))["latest_invoice"]

        again_failing = await saved(client, "pm_card_chargeCustomerFail", "setup-2")  # declined too: still past due
        await charges_to(app, provider_id, again_failing)
        still = await eventually(lambda: _audited(client, started["subscription_id"], f"{open_invoice}, retried"))
        assert still["status"] == "past_due"
        assert any(f"{open_invoice}, retried with it, failed" in (entry["reason"] or "") for entry in still["timeline"])

        card = await saved(client, "pm_card_visa", "setup-3")  # no clock moves: the open invoice is paid now
        recovered = await settled(client, started["subscription_id"], status="active", invoices=2)
        answer = await call(client, "check_entitlement", customer_id="ada", feature="pro")
        assert answer["allowed"] is True and answer["reason"] == "active"
        assert answer["expires_at"] == recovered["current_period_end"]
        provider = await provider_subscription(app, provider_id)
        assert provider["status"] == "active" and provider["default_payment_method"] == card
        customer = await provider_customer(app, provider["customer"])
        assert customer["invoice_settings"]["default_payment_method"] == card
        reasons = [entry["reason"] for entry in recovered["timeline"]]
        assert any(f"renewals now charge card {card}; its open invoice {open_invoice}" in r for r in reasons)
        assert recovered["invoices"][-1]["status"] == "succeeded"

        await to_period_end(app, recovered["current_period_end"])  # the next renewal charges the new card
        renewed = await settled(client, started["subscription_id"], status="active", invoices=3)
        assert renewed["current_period_end"] > recovered["current_period_end"]
    invoice = await db.fetchval("SELECT object->>'status' FROM sandbox.objects WHERE id = $1", open_invoice)
    assert invoice == "paid"
    declined, paid_now = await sent_to_sandbox(db, "POST", f"/v1/invoices/{open_invoice}/pay")
    assert declined["idempotency_key"].startswith(f"{started['subscription_id']}-card-{again_failing}")
    assert (declined["status_code"], paid_now["status_code"]) == (402, 200)
    assert paid_now["idempotency_key"].startswith(f"{started['subscription_id']}-card-{card}")
    charged = await db.fetch(
        "SELECT object->>'payment_method' AS card, object->>'status' AS status FROM sandbox.payment_intents"
        " ORDER BY created_at"
    )
    assert [(row["card"], row["status"]) for row in charged][-2:] == [(card, "succeeded"), (card, "succeeded")]


async def _audited(client: Client, subscription_id: str, words: str) -> dict | None:
    view = await call(client, "get_subscription", subscription_id=subscription_id)
    return view if any(words in (entry["reason"] or "") for entry in view["timeline"]) else None


async def test_a_card_saved_while_active_is_the_one_later_renewals_charge(app, mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        started = await start(client)
        card = await saved(client, "pm_card_visa", "setup-1")
        await charges_to(app, started["provider_subscription_id"], card)
        await to_period_end(app, started["current_period_end"])
        renewed = await settled(client, started["subscription_id"], status="active", invoices=2)
        assert any(f"renewals now charge card {card}" == entry["reason"] for entry in renewed["timeline"])
        assert any("saved (setup set_" in (entry["reason"] or "") for entry in renewed["timeline"])
    charged = await db.fetch(
        "SELECT object->>'payment_method' AS card FROM sandbox.payment_intents ORDER BY created_at"
    )
    assert [row["card"] == card for row in charged] == [False, True]  # the first invoice, then the renewal
    [told] = await sent_to_sandbox(db, "POST", f"/v1/subscriptions/{started['provider_subscription_id']}")
    assert told["params"] == {"default_payment_method": card, "expand": {"0": "latest_invoice.payments"}}
    assert await sent_to_sandbox(db, "POST", "/v1/invoices/") == []  # nothing was overdue, nothing paid early


async def test_a_card_the_provider_was_not_told_of_is_made_the_subscriptions_card_by_the_reconciler(
    app, mcp, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = app.services.provider
    tell = provider.use_card

    async def unreachable(change: Any) -> Any:
        raise ProviderUnavailable()

    async with mcp() as client:
        started = await start(client)
        first_card = (await provider_subscription(app, started["provider_subscription_id"]))["default_payment_method"]
        monkeypatch.setattr(provider, "use_card", unreachable)
        card = await saved(client, "pm_card_visa", "setup-1")  # the card is saved all the same
        row = "SELECT card_to_apply FROM subscriptions WHERE id = $1"
        assert await eventually(lambda: db.fetchval(row, started["subscription_id"])) == card
        assert (await provider_subscription(app, started["provider_subscription_id"]))["default_payment_method"] == (
            first_card
        )
        monkeypatch.setattr(provider, "use_card", tell)
        monkeypatch.setattr(app.services.settings, "reconcile_after_seconds", 0)
        report = await reconciler.reconcile_once(app.services)
        assert report.steps["saved cards for subscriptions"] == "ok"
        assert started["subscription_id"] in report.updated
        await charges_to(app, started["provider_subscription_id"], card)
        assert await db.fetchval(row, started["subscription_id"]) is None
        again = await reconciler.reconcile_once(app.services)
        assert started["subscription_id"] not in again.updated
        view = await call(client, "get_subscription", subscription_id=started["subscription_id"])
        done = [entry for entry in view["timeline"] if entry["reason"] == f"renewals now charge card {card}"]
        assert [entry["actor"] for entry in done] == ["reconciler"]
