"""Subscriptions on the sandbox's billing and its test clock: real PostgreSQL, the real Stripe adapter against
the sandbox, real signed webhooks delivered over HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest
from mcp import Client

from server.errors import SpendLimitExceeded
from tests.helpers import (
    LOCAL,
    RunningApp,
    advance,
    all_events_delivered,
    api_client,
    assert_problem,
    call,
    call_error,
    click,
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


def at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


async def test_a_year_of_monthly_renewals_pays_twelve_invoices_and_access_ends_with_the_last_period(
    app, mcp, db: asyncpg.Connection
) -> None:
    async with mcp() as client:
        started = await call(client, "start_subscription", **PLAN, idempotency_key="s1", payment_method="pm_card_visa")
        assert started["status"] == "active" and started["first_payment_status"] == "succeeded"
        first_end = started["current_period_end"]
        allowed = await call(client, "check_entitlement", customer_id="ada", feature="pro")
        assert allowed["allowed"] and allowed["reason"] == "active" and allowed["expires_at"] == first_end

        await advance(app, 340)  # eleven renewals: the twelfth period is running
        provider = await provider_subscription(app, started["provider_subscription_id"])
        last_end = at(provider["items"]["data"][0]["current_period_end"]).isoformat().replace("+00:00", "Z")
        view = await settled(client, started["subscription_id"], invoices=12, status="active")
        assert datetime.fromisoformat(view["current_period_end"]) == datetime.fromisoformat(last_end)
        entitled = await call(client, "check_entitlement", customer_id="ada", feature="pro")
        assert entitled["allowed"]
        assert datetime.fromisoformat(entitled["expires_at"]) == datetime.fromisoformat(last_end)
        # the running period's allowance alone, though the newest invoice was heard of before the ones it follows
        tokens = await call(client, "check_entitlement", customer_id="ada", feature="llm_tokens", quantity=1)
        assert tokens["balance"]["granted"] == 1_000_000
        payments = await call(client, "list_payments", customer_id="ada", limit=50)
        assert len(payments["payments"]) == 12
        assert {p["subscription_id"] for p in payments["payments"]} == {started["subscription_id"]}
        assert {p["amount_minor"] for p in payments["payments"]} == {2900}
        renewals = [p["description"] for p in payments["payments"] if p["payment_id"] != started["first_payment_id"]]
        assert len(renewals) == 11 and all(d.startswith("pro_ai_monthly: renewal (invoice in_") for d in renewals)
    paid = await db.fetchval(
        "SELECT count(*) FROM sandbox.objects WHERE type = 'invoice' AND object->>'status' = 'paid'"
    )
    assert paid == 12


async def start(client: Client, card: str = "pm_card_visa", key: str = "s1") -> dict:
    return await call(client, "start_subscription", **PLAN, idempotency_key=key, payment_method=card)


async def test_the_monthly_allowance_is_granted_once_per_period_and_expires_at_its_end(
    app, mcp, db: asyncpg.Connection
) -> None:
    async with mcp() as client:
        started = await start(client)
        again = await start(client)
        assert again["replayed"] is True and again["subscription_id"] == started["subscription_id"]
        saved = (await call(client, "get_customer", customer_id="ada"))["payment_methods"]
        assert [(card["last4"], card["is_default"]) for card in saved] == [("4242", True)]  # pm_card_visa, saved
        tokens = await call(client, "check_entitlement", customer_id="ada", feature="llm_tokens", quantity=1)
        assert tokens["balance"]["remaining"] == 1_000_000
        await call(client, "consume_credits", customer_id="ada", feature="llm_tokens", quantity=400_000,
                   idempotency_key="c1")  # fmt: skip
        await advance(app, 32)
        await settled(client, started["subscription_id"], invoices=2)
        tokens = await call(client, "check_entitlement", customer_id="ada", feature="llm_tokens", quantity=1)
        assert tokens["balance"]["remaining"] == 1_000_000  # the unspent 600,000 expired with their period
        customer = await call(client, "get_customer", customer_id="ada")
        assert [plan["subscription_id"] for plan in customer["subscriptions"]] == [started["subscription_id"]]
        assert {p["subscription_id"] for p in customer["latest_payments"]} == {started["subscription_id"]}
    lots = await db.fetch("SELECT quantity, written_off, expires_at FROM credit_lots ORDER BY expires_at")
    periods = await db.fetch("SELECT starts_at, expires_at FROM entitlements WHERE feature = 'pro' ORDER BY starts_at")
    assert [lot["quantity"] for lot in lots] == [1_000_000, 1_000_000] and lots[0]["written_off"] == 600_000
    assert [lot["expires_at"] for lot in lots] == [period["expires_at"] for period in periods]
    assert periods[0]["expires_at"] == periods[1]["starts_at"]


async def test_a_failed_renewal_is_past_due_and_still_allowed_then_recovers(app, mcp) -> None:
    async with mcp() as client:
        started = await start(client, "pm_card_visa")
        async with local_http(base_url=f"{app.base_url}/sandbox") as http:
            changed = await http.post(
                f"/v1/subscriptions/{started['provider_subscription_id']}",
                data={"default_payment_method": "pm_card_chargeCustomerFail"},
                headers={"Authorization": f"Bearer {app.services.sandbox.api_key}"},
            )
            assert changed.status_code == 200, changed.text
        await to_period_end(app, started["current_period_end"])
        await settled(client, started["subscription_id"], status="past_due")
        grace = await call(client, "check_entitlement", customer_id="ada", feature="pro")
        assert grace["allowed"] is True and grace["reason"] == "past_due"
        async with local_http(base_url=f"{app.base_url}/sandbox") as http:
            recovered = await http.post(
                f"/v1/subscriptions/{started['provider_subscription_id']}",
                data={"default_payment_method": "pm_card_visa"},
                headers={"Authorization": f"Bearer {app.services.sandbox.api_key}"},
            )
            assert recovered.status_code == 200, recovered.text
        await advance(app, 1)  # the first retry succeeds
        await settled(client, started["subscription_id"], status="active", invoices=2)
        assert (await call(client, "check_entitlement", customer_id="ada", feature="pro"))["reason"] == "active"


async def test_a_renewal_failing_through_every_retry_ends_access(app, mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        started = await start(client, "pm_card_visa")
        async with local_http(base_url=f"{app.base_url}/sandbox") as http:
            await http.post(
                f"/v1/subscriptions/{started['provider_subscription_id']}",
                data={"default_payment_method": "pm_card_chargeCustomerFail"},
                headers={"Authorization": f"Bearer {app.services.sandbox.api_key}"},
            )
        await advance(app, 31)
        await settled(client, started["subscription_id"], status="past_due")
        await advance(app, 6)  # retries after 1, 3 and 5 days fail: the provider gives up
        ended = await settled(client, started["subscription_id"], status="canceled", invoices=1)
        answer = await call(client, "check_entitlement", customer_id="ada", feature="pro")
        assert answer["allowed"] is False and answer["reason"] == "canceled"
        assert datetime.fromisoformat(answer["expires_at"]) == datetime.fromisoformat(ended["ended_at"])
        tokens = await call(client, "check_entitlement", customer_id="ada", feature="llm_tokens", quantity=1)
        assert tokens["allowed"] is False and tokens["reason"] == "canceled"  # the allowance's plan ended
        assert tokens["expires_at"] == answer["expires_at"] and tokens["offers"]
    await assert_allowance_expired(db)


async def assert_allowance_expired(db: asyncpg.Connection) -> None:
    """Every credit lot closed with its unspent credits written off, each write-off in the credit ledger."""
    lots = await db.fetch("SELECT id, quantity, used, written_off, closed_at FROM credit_lots")
    assert lots and all(lot["closed_at"] is not None for lot in lots)
    assert all(lot["used"] + lot["written_off"] == lot["quantity"] for lot in lots)
    expired = await db.fetchval("SELECT -sum(granted_delta) FROM credit_ledger WHERE kind = 'expire'")
    assert expired == sum(lot["written_off"] for lot in lots)


async def test_cancel_at_period_end_keeps_access_until_then_and_not_after(app, mcp) -> None:
    async with mcp() as client:
        started = await start(client)
        canceled = await call(client, "cancel_subscription", subscription_id=started["subscription_id"])
        assert canceled["cancel_at_period_end"] is True and canceled["status"] == "active"
        assert "ends instead of renewing" in canceled["next_step"] and "renews by itself" not in canceled["next_step"]
        again = await call(client, "cancel_subscription", subscription_id=started["subscription_id"])
        assert again["cancel_at_period_end"] is True
        still = await call(client, "check_entitlement", customer_id="ada", feature="pro")
        assert still["allowed"] is True and still["expires_at"] == started["current_period_end"]
        await advance(app, 31)
        await settled(client, started["subscription_id"], status="canceled", invoices=1)
        after = await call(client, "check_entitlement", customer_id="ada", feature="pro")
        assert after["allowed"] is False and after["reason"] == "canceled"
        assert after["expires_at"] == started["current_period_end"]


async def test_an_immediate_cancel_ends_access_now(app, mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        started = await start(client)
        ended = await call(
            client, "cancel_subscription", subscription_id=started["subscription_id"], at_period_end=False,
            reason="asked to stop",
        )  # fmt: skip
        assert ended["status"] == "canceled" and ended["ended_at"] is not None
        answer = await call(client, "check_entitlement", customer_id="ada", feature="pro")
        assert answer["allowed"] is False and answer["reason"] == "canceled"
        tokens = await call(client, "check_entitlement", customer_id="ada", feature="llm_tokens", quantity=1)
        assert tokens["allowed"] is False
        await assert_allowance_expired(db)
        again = await call(client, "start_subscription", **PLAN, idempotency_key="s2", payment_method="pm_card_visa")
        assert again["subscription_id"] != started["subscription_id"]  # an ended one does not block a new start


async def test_a_second_live_subscription_is_refused_naming_the_first(app, mcp) -> None:
    async with mcp() as client:
        started = await start(client)
        refused = await call_error(client, "start_subscription", **PLAN, idempotency_key="s2",
                                   payment_method="pm_card_visa")  # fmt: skip
        assert started["subscription_id"] in refused and "already has" in refused


async def test_an_unpaid_subscription_is_still_live_since_a_late_payment_brings_it_back(
    app, mcp, db: asyncpg.Connection, owner_database_url: str
) -> None:
    async with mcp() as client:
        started = await start(client)
        await all_events_delivered(owner_database_url)  # no start event moves it back to active after this
        await db.execute("UPDATE subscriptions SET status = 'unpaid' WHERE id = $1", started["subscription_id"])
        refused = await call_error(client, "start_subscription", **PLAN, idempotency_key="s2",
                                   payment_method="pm_card_visa")  # fmt: skip
        assert started["subscription_id"] in refused and "unpaid" in refused
    second = "INSERT INTO subscriptions (tenant_id, id, customer_id, product_id, provider, first_payment_id,"
    second += " idempotency_key) SELECT tenant_id, 'subs_second', customer_id, product_id, provider,"
    second += " first_payment_id, 'k2' FROM subscriptions WHERE id = $1"
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(second, started["subscription_id"])


async def test_without_a_card_the_person_pays_the_first_invoice_on_its_page(app, mcp) -> None:
    async with mcp() as client:
        started = await call(client, "start_subscription", **PLAN, idempotency_key="s1")
        assert started["status"] == "incomplete" and "/sandbox/invoice/in_" in started["next_action_url"]
        pending = await call(client, "check_entitlement", customer_id="ada", feature="pro")
        assert pending["allowed"] is False and pending["reason"] == "payment_pending"
        await click(started["next_action_url"], "Pay")
        await settled(client, started["subscription_id"], status="active", invoices=1)
        assert (await call(client, "check_entitlement", customer_id="ada", feature="pro"))["allowed"] is True


async def test_the_subscription_operations_over_http(app, api_key: str) -> None:
    body = {**PLAN, "payment_method": "pm_card_visa"}
    async with api_client(app.base_url, api_key) as http:
        first = await http.post("/v1/subscriptions", json=body, headers={"Idempotency-Key": "h1"})
        assert first.status_code == 201, first.text
        started = first.json()
        assert started["status"] == "active" and started["subscription_id"].startswith("subs_")
        again = await http.post("/v1/subscriptions", json=body, headers={"Idempotency-Key": "h1"})
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["subscription_id"] == started["subscription_id"]
        other = await http.post("/v1/subscriptions", json={**body, "payment_method": "saved"},
                                headers={"Idempotency-Key": "h1"})  # fmt: skip
        assert_problem(other, 409, "idempotency_key_reused")
        second = await http.post("/v1/subscriptions", json=body, headers={"Idempotency-Key": "h2"})
        assert started["subscription_id"] in assert_problem(second, 409, "subscription_exists", "product_id")["detail"]
        one_off = await http.post("/v1/subscriptions", json={**body, "product_id": "pro_monthly"},
                                  headers={"Idempotency-Key": "h3"})  # fmt: skip
        assert "create_charge" in assert_problem(one_off, 400, "invalid_request", "product_id")["detail"]
        as_charge = await http.post("/v1/charges", json=body, headers={"Idempotency-Key": "h4"})
        assert "start_subscription" in assert_problem(as_charge, 400, "invalid_request", "product_id")["detail"]

        path = f"/v1/subscriptions/{started['subscription_id']}"
        looked_up = await http.get(path)
        assert looked_up.status_code == 200 and len(looked_up.json()["invoices"]) == 1
        canceled = await http.post(f"{path}/cancel", json={"reason": "too expensive"})
        assert canceled.status_code == 200 and canceled.json()["cancel_at_period_end"] is True
        missing = await http.get("/v1/subscriptions/subs_0000")
        assert_problem(missing, 404, "subscription_not_found")
        bad = await http.post(f"{path}/change", json={"product_id": "pro_ai_monthly", "when": "soon"},
                              headers={"Idempotency-Key": "h5"})  # fmt: skip
        assert_problem(bad, 422, "invalid_parameter")


async def test_concurrent_starts_for_one_customer_and_plan_make_one_subscription(app, mcp, db) -> None:
    async with mcp() as a, mcp() as b, mcp() as c:
        results = await asyncio.gather(
            *(
                client.call_tool(
                    "start_subscription", {**PLAN, "idempotency_key": f"k{n}", "payment_method": "pm_card_visa"}
                )
                for n, client in enumerate([a, b, c, a, b, c])
            )
        )
    started = [r.structured_content for r in results if not r.is_error]
    refused = [r.content[0].text for r in results if r.is_error]
    assert len(started) == 1 and len(refused) == 5
    assert all(started[0]["subscription_id"] in text for text in refused)
    assert await db.fetchval("SELECT count(*) FROM subscriptions") == 1
    assert await db.fetchval("SELECT count(*) FROM sandbox.objects WHERE type = 'subscription'") == 1


async def test_a_saved_card_pays_the_first_invoice_and_every_renewal(app, mcp, db: asyncpg.Connection) -> None:

    async with mcp() as client:
        view = await save_card(client, "ada")
        card = view["payment_methods"][0]["payment_method_id"]
        started = await call(client, "start_subscription", **PLAN, idempotency_key="s1", payment_method="saved")
        assert started["status"] == "active"
        await to_period_end(app, started["current_period_end"])
        await settled(client, started["subscription_id"], invoices=2)
    [created] = await sent_to_sandbox(db, "POST", "/v1/subscriptions")
    assert created["idempotency_key"] == started["subscription_id"]
    price = await db.fetchval("SELECT id FROM sandbox.objects WHERE type = 'price'")
    metadata = {"subscription_id": started["subscription_id"], "product_id": "pro_ai_monthly",
                "tenant_id": "default", "customer_id": "ada"}  # fmt: skip
    assert created["params"] == {
        "customer": view["provider_customer_id"], "items": {"0": {"price": price}}, "metadata": metadata,
        "expand": {"0": "latest_invoice.payments"}, "default_payment_method": card,
        "payment_behavior": "allow_incomplete",
    }  # fmt: skip
    assert await sent_to_sandbox(db, "POST", "/v1/payment_methods/") == []  # a saved card is not saved again
    charged = await db.fetch("SELECT object->>'payment_method' AS card FROM sandbox.payment_intents")
    assert {row["card"] for row in charged} == {card}
    moved = await db.fetch("SELECT object->>'type' AS kind, source FROM sandbox.balance_transactions")
    intents = await db.fetch("SELECT provider_payment_id FROM payments WHERE subscription_id IS NOT NULL")
    assert sorted(row["source"][3:] for row in moved) == sorted(row["provider_payment_id"][3:] for row in intents)
    assert {row["kind"] for row in moved} == {"charge"}  # each invoice's money is in the balance, for finance


async def test_the_reconciler_brings_a_quiet_subscription_to_the_providers_state(
    settings, listening_socket, db: asyncpg.Connection
) -> None:
    from server import subscriptions
    from tests.helpers import local_mcp, running_app

    quiet = settings.model_copy(update={"sandbox_deliver_webhooks": False, "reconcile_interval_seconds": 0})
    async with running_app(quiet, listening_socket) as services, local_mcp(quiet) as client:
        started = await start(client)
        await advance(RunningApp(services), 40)  # a renewal nobody told paywarden about
        before = await call(client, "get_subscription", subscription_id=started["subscription_id"])
        assert len(before["invoices"]) == 1
        changed = await subscriptions.reconcile_quiet(services, quiet_seconds=0)
        after = await call(client, "get_subscription", subscription_id=started["subscription_id"])
        assert await subscriptions.reconcile_quiet(services, quiet_seconds=0) == []  # a second pass: nothing
    assert changed == [started["subscription_id"]]
    assert len(after["invoices"]) == 2 and after["current_period_end"] > before["current_period_end"]
    assert after["timeline"][-1]["actor"] == "reconciler"


async def test_a_start_is_limited_and_approved_like_a_charge(
    app, api_key: str, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from server import charges, subscriptions

    services = app.services
    monkeypatch.setattr(services.settings, "approval_threshold_minor", 1000)  # the first invoice (2900) needs it
    async with api_client(app.base_url, api_key) as http:
        held = await http.post("/v1/subscriptions", json={**PLAN, "payment_method": "pm_card_visa"},
                               headers={"Idempotency-Key": "a1"})  # fmt: skip
        assert held.status_code == 202 and held.json()["first_payment_status"] == "requires_approval"
        assert held.json()["provider_subscription_id"] is None  # nothing at the provider before the approval
        assert held.json()["next_step"].startswith(f"Its first payment {held.json()['first_payment_id']} waits for")
        await charges.approve(services, held.json()["first_payment_id"], "olga")
        looked_up = (await http.get(f"/v1/subscriptions/{held.json()['subscription_id']}")).json()
        assert looked_up["status"] == "active"
        other = await http.post("/v1/subscriptions", json={"customer_id": "bo", "product_id": "pro_ai_monthly"},
                                headers={"Idempotency-Key": "a2"})  # fmt: skip
        await charges.reject(services, other.json()["first_payment_id"], "olga", "not now")
    quiet = replace(services, settings=services.settings.model_copy(update={"max_charge_minor": 1000}))
    closed = await subscriptions.reconcile_quiet(quiet, quiet_seconds=0)
    assert other.json()["subscription_id"] in closed
    assert await db.fetchval("SELECT status FROM subscriptions WHERE customer_id = 'bo'") == "canceled"
    request = subscriptions.charge_input(LOCAL, "cy", "pro_ai_monthly", "a3", "pm_card_visa")
    with pytest.raises(SpendLimitExceeded):
        await subscriptions.start(quiet, request)
    assert await db.fetchval("SELECT count(*) FROM subscriptions WHERE customer_id = 'cy'") == 0


async def test_a_declined_card_starts_nothing_and_says_why(app, mcp) -> None:
    async with mcp() as client:
        refused = await start(client, "pm_card_chargeDeclined")
        assert refused["status"] == "canceled" and refused["first_payment_status"] == "failed"
        assert refused["next_step"].startswith("Ended before it began: its first payment did not go through")
        payment = await call(client, "get_payment", payment_id=refused["first_payment_id"])
        assert "declined" in payment["failure_reason"]
        again = await start(client, "pm_card_visa", key="s2")
        assert again["status"] == "active"


async def test_a_first_invoice_nobody_pays_expires_and_ends_the_start(app, mcp) -> None:
    async with mcp() as client:
        started = await call(client, "start_subscription", **PLAN, idempotency_key="s1")
        assert started["status"] == "incomplete"
        await advance(app, 1)  # Stripe's 23 hours pass
        ended = await settled(client, started["subscription_id"], status="canceled")
        assert ended["invoices"][0]["status"] == "canceled" and ended["ended_at"] is not None
        async with local_http() as browser:
            page = await browser.get(started["next_action_url"])
        assert "void" in page.text
