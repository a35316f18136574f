"""A person saves a card once on the provider's page; the agent charges it later while they are away,
within every guard — through the real Stripe adapter, against the sandbox."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from mcp import Client

from server import setups
from server.errors import ChargeInProgress
from tests.helpers import (
    LOCAL,
    call,
    call_error,
    click,
    eventually,
    http_client,
    new_key,
    sandbox_client,
    save_card,
    sent_to_sandbox,
)


def saved_charge(customer_id: str, key: str, **extra: Any) -> dict:
    return {"customer_id": customer_id, "idempotency_key": key, "product_id": "pro_monthly", "payment_method": "saved",
            **extra}  # fmt: skip


async def test_a_saved_card_is_charged_off_session_without_the_person(mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        view = await save_card(client, "alice")
        card = view["payment_methods"][0]
        assert {key: card[key] for key in ("brand", "last4", "exp_month", "exp_year", "is_default")} == {
            "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034, "is_default": True
        }  # fmt: skip
        assert card["payment_method_id"].startswith("pm_") and view["provider_customer_id"].startswith("cus_")

        charge = await call(client, "create_charge", **saved_charge("alice", "c1"))
        assert charge["status"] == "succeeded"
        assert (await call(client, "check_entitlement", customer_id="alice", feature="pro"))["allowed"] is True
        again = await call(client, "create_charge", **saved_charge("alice", "c1"))
        assert again["replayed"] is True and again["payment_id"] == charge["payment_id"]

    [intent] = await sent_to_sandbox(db, "POST", "/v1/payment_intents")
    assert intent["idempotency_key"] == charge["payment_id"]
    metadata = {"payment_id": charge["payment_id"], "customer_id": "alice", "product_id": "pro_monthly"}
    assert intent["params"] == {
        "amount": "2000", "currency": "usd", "metadata": metadata, "allowed_payment_method_types": {"0": "card"},
        "payment_method": card["payment_method_id"], "confirm": "true", "description": "Pro, 30 days",
        "customer": view["provider_customer_id"], "off_session": "true",
    }  # fmt: skip
    actions = [row["action"] for row in await db.fetch("SELECT action FROM customer_audit ORDER BY id")]
    assert actions == ["setup_requested", "provider_customer_created", "setup_requires_action", "card_saved",
                       "setup_succeeded"]  # fmt: skip


async def test_saving_a_card_asks_the_provider_once_per_key_with_stripes_parameters(
    mcp, db: asyncpg.Connection
) -> None:
    async with mcp() as client:
        first = await call(client, "setup_payment_method", customer_id="bob", idempotency_key="s1")
        again = await call(client, "setup_payment_method", customer_id="bob", idempotency_key="s1")
        other = await call(client, "setup_payment_method", customer_id="bob", idempotency_key="s2")
    assert again["replayed"] is True and again["setup_id"] == first["setup_id"]
    assert again["setup_url"] == first["setup_url"] and other["setup_id"] != first["setup_id"]

    [customer] = await sent_to_sandbox(db, "POST", "/v1/customers")
    assert customer["params"] == {
        "metadata": {"tenant_id": "default", "customer_id": "bob"},
        "description": "paywarden customer bob (tenant default)",
    }
    sessions = await sent_to_sandbox(db, "POST", "/v1/checkout/sessions")
    assert [session["idempotency_key"] for session in sessions] == [first["setup_id"], other["setup_id"]]
    params = sessions[0]["params"]
    expires_at = int(params.pop("expires_at"))
    metadata = {"setup_id": first["setup_id"], "customer_id": "bob", "tenant_id": "default"}
    assert params == {
        "mode": "setup", "customer": await db.fetchval("SELECT provider_customer_id FROM customers"),
        "allowed_payment_method_types": {"0": "card"}, "client_reference_id": first["setup_id"],
        "metadata": metadata, "setup_intent_data": {"metadata": metadata},
    }  # fmt: skip
    created = await db.fetchval(
        "SELECT floor(extract(epoch FROM created_at))::bigint FROM payment_setups WHERE id = $1", first["setup_id"]
    )
    assert expires_at == created + 24 * 3600  # PAYWARDEN_PAYMENT_PAGE_HOURS, from when it was recorded


async def test_a_saved_card_that_needs_the_person_waits_for_them(mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        await save_card(client, "carol", "pm_card_authenticationRequired")
        charge = await call(client, "create_charge", **saved_charge("carol", "c1"))
        assert charge["status"] == "requires_action" and "/sandbox/pay/pi_" in charge["next_action_url"]
        pending = await call(client, "check_entitlement", customer_id="carol", feature="pro")
        assert pending["reason"] == "payment_pending"  # nothing is charged without the person

        await click(charge["next_action_url"], "Pay")
        paid = await eventually(lambda: _status(client, charge["payment_id"], "succeeded"))
    assert "failed" not in [step["to_status"] for step in paid["timeline"]]
    create, confirm = await sent_to_sandbox(db, "POST", "/v1/payment_intents")
    assert create["status_code"] == 402 and create["params"]["off_session"] == "true"
    assert confirm["path"] == f"/v1/payment_intents/{charge['provider_payment_id']}/confirm"
    assert confirm["params"] == {"payment_method": create["params"]["payment_method"]}  # on-session now
    assert confirm["idempotency_key"] == f"{charge['payment_id']}-with-the-person"
    # The off-session decline's event, before or after the provider's answer: "the person is needed", never failed.
    declined_off_session = await db.fetchrow(
        "SELECT outcome, note FROM webhook_events WHERE event_type = 'payment_intent.payment_failed'"
    )
    assert declined_off_session["outcome"] in ("applied", "ignored")


async def test_a_declined_saved_card_fails_with_the_providers_reason(mcp) -> None:
    async with mcp() as client:
        await save_card(client, "dave", "pm_card_chargeCustomerFail")
        charge = await call(client, "create_charge", **saved_charge("dave", "c1"))
        assert charge["status"] == "failed" and charge["failure_reason"] == "Your card was declined."
        assert (await call(client, "check_entitlement", customer_id="dave", feature="pro"))["allowed"] is False


async def test_without_a_saved_card_the_agent_is_told_to_set_one_up(mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        refused = await call_error(client, "create_charge", **saved_charge("erin", "c1"))
    assert "no saved payment method" in refused and "setup_payment_method" in refused
    assert await db.fetchval("SELECT count(*) FROM payments") == 0
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys") == 0


async def test_every_guard_applies_to_saved_cards(mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:  # no elicitation: a charge that needs approval waits for the operator
        await save_card(client, "frank")
        big = {**saved_charge("frank", "big"), "product_id": None, "amount_minor": 9000, "currency": "USD"}
        held = await call(client, "create_charge", **{k: v for k, v in big.items() if v is not None})
        too_big = {**big, "idempotency_key": "huge", "amount_minor": 150_000}
        refused = await call_error(client, "create_charge", **{k: v for k, v in too_big.items() if v is not None})
    assert held["status"] == "requires_approval" and "approval threshold" in held["approval_reason"]
    assert "over the per-charge limit of 1000.00 USD" in refused
    assert await sent_to_sandbox(db, "POST", "/v1/payment_intents") == []


async def test_the_keys_budget_and_the_duplicate_guard_apply_to_saved_cards(app, database_url, db) -> None:
    key = await new_key(database_url, budget_minor=5000, budget_currency="USD")
    async with http_client(f"{app.base_url}/mcp", key) as client:  # an operator approves this key's holds
        await save_card(client, "ivy")
        first = await call(client, "create_charge", **saved_charge("ivy", "c1"))
        repeat = await call(client, "create_charge", **saved_charge("ivy", "c2"))
        extra = {**saved_charge("ivy", "c3"), "amount_minor": 3500, "currency": "USD", "description": "extra"}
        del extra["product_id"]
        over_budget = await call_error(client, "create_charge", **extra)
    assert first["status"] == "succeeded"
    assert repeat["status"] == "requires_approval" and first["payment_id"] in repeat["approval_reason"]
    assert "would take this API key over the 24-hour budget of 50.00 USD" in over_budget
    assert [intent["idempotency_key"] for intent in await sent_to_sandbox(db, "POST", "/v1/payment_intents")] == [
        first["payment_id"]
    ]  # only the first reached the provider
    assert await db.fetchval("SELECT count(*) FROM payments") == 2


async def test_a_card_detached_at_the_provider_is_forgotten(app, mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        await save_card(client, "gina", "pm_card_chargeCustomerFail", key="s1")
        view = await save_card(client, "gina", "pm_card_visa", key="s2")
        newest, older = view["payment_methods"]
        assert newest["last4"] == "4242" and newest["is_default"] and not older["is_default"]

        await sandbox_client(app).v1.payment_methods.detach_async(newest["payment_method_id"])
        (after,) = await eventually(lambda: _cards_left(client, "gina", 1))
        assert after[0]["last4"] == "0341" and after[0]["is_default"]  # the other card is now the default
        await sandbox_client(app).v1.payment_methods.detach_async(older["payment_method_id"])
        await eventually(lambda: _cards_left(client, "gina", 0))
        refused = await call_error(client, "create_charge", **saved_charge("gina", "c1"))
    assert "setup_payment_method" in refused
    removed = await db.fetchval("SELECT count(*) FROM customer_audit WHERE action = 'card_removed'")
    assert removed == 2


async def _cards_left(client: Client, customer_id: str, count: int) -> tuple[list] | None:
    methods = (await call(client, "get_customer", customer_id=customer_id))["payment_methods"]
    return (methods,) if len(methods) == count else None


async def _status(client: Client, payment_id: str, wanted: str) -> dict | None:
    payment = await call(client, "get_payment", payment_id=payment_id)
    return payment if payment["status"] == wanted else None


async def test_concurrent_setups_make_one_setup_per_key_and_one_provider_customer(app, db: asyncpg.Connection) -> None:
    async def attempt(key: str) -> Any:
        try:
            return await setups.setup_payment_method(app.services, LOCAL, "hana", key)
        except ChargeInProgress:  # a repeat while the first still talks to the provider: retry shortly
            return None

    results = await asyncio.gather(*[attempt(f"k{n % 3}") for n in range(12)])
    done = [result for result in results if result is not None]
    assert len({result.setup_id for result in done}) == 3 and sum(not r.replayed for r in done) == 3
    assert await db.fetchval("SELECT count(*) FROM payment_setups") == 3
    assert await db.fetchval("SELECT count(*) FROM customers") == 1
    assert await db.fetchval("SELECT count(*) FROM sandbox.objects WHERE type = 'customer'") == 1
    assert await db.fetchval("SELECT count(*) FROM sandbox.objects WHERE type = 'checkout.session'") == 3
