"""Subscriptions changing: plans switched at renewal or now (prorated), trials, refunded renewals, and the
provider's events arriving twice and out of order — against the sandbox, real PostgreSQL, signed webhooks."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import replace
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import asyncpg
import pytest
from mcp.types import ElicitResult

from db.pool import transaction
from server import subscriptions
from server.config import Settings
from server.providers import ProviderInvoice
from tests.helpers import (
    RunningApp,
    advance,
    all_events_delivered,
    api_client,
    approve_everything,
    call,
    call_error,
    eventually,
    local_http,
    paywarden_command,
    post_webhook,
    provider_subscription,
    running_app,
    sent_to_sandbox,
    settled,
    signed,
    to_period_end,
)

CATALOG = """
[[products]]
id = "pro_ai_monthly"
name = "Pro AI, monthly"
amount_minor = 2900
currency = "USD"
interval = "month"
grants = [{ feature = "pro" }, { feature = "llm_tokens", credits = 1000000 }]

[[products]]
id = "team_ai_monthly"
name = "Team AI, monthly"
amount_minor = 9900
currency = "USD"
interval = "month"
grants = [{ feature = "pro" }, { feature = "llm_tokens", credits = 5000000 }]

[[products]]
id = "pro_ai_trial"
name = "Pro AI, monthly, 14 days free"
amount_minor = 2900
currency = "USD"
interval = "month"
trial_days = 14
grants = [{ feature = "pro" }]
"""


@pytest.fixture
async def app(app, owner_database_url: str):
    yield app
    await all_events_delivered(owner_database_url)


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    catalog = tmp_path / "plans.toml"
    catalog.write_text(CATALOG)
    no_approval = {"approval_threshold_minor": 1_000_000}  # the team plan (99.00) starts without an operator
    return settings.model_copy(update={"catalog_path": catalog, "duplicate_window_seconds": 0, **no_approval})


async def start(client, product: str = "pro_ai_monthly", key: str = "s1") -> dict:
    return await call(
        client, "start_subscription", customer_id="ada", product_id=product, idempotency_key=key,
        payment_method="pm_card_visa",
    )  # fmt: skip


async def test_a_plan_change_at_renewal_bills_the_new_plan_from_the_next_period(app, mcp) -> None:
    async with mcp() as client:
        started = await start(client)
        changed = await call(
            client, "change_subscription", subscription_id=started["subscription_id"], product_id="team_ai_monthly",
            idempotency_key="c1",
        )  # fmt: skip
        assert changed["pending_product_id"] == "team_ai_monthly" and changed["product_id"] == "pro_ai_monthly"
        await to_period_end(app, started["current_period_end"])
        view = await settled(client, started["subscription_id"], invoices=2, product_id="team_ai_monthly")
    assert view["pending_product_id"] is None
    assert [invoice["amount_minor"] for invoice in view["invoices"]] == [2900, 9900]


async def test_a_plan_change_now_charges_the_prorated_difference_in_the_customers_favour(
    app, mcp, db: asyncpg.Connection
) -> None:
    async with mcp() as client:
        started = await start(client)
        await advance(app, seconds=10 * 86400 + 12345)
        clock = await db.fetchval("SELECT value::bigint FROM sandbox.settings WHERE name = 'clock_offset'")
        changed = await call(
            client, "change_subscription", subscription_id=started["subscription_id"], product_id="team_ai_monthly",
            idempotency_key="c1", when="now",
        )  # fmt: skip
        assert changed["product_id"] == "team_ai_monthly"
        view = await settled(client, started["subscription_id"], invoices=2)
    provider = await provider_subscription(app, started["provider_subscription_id"])
    item = provider["items"]["data"][0]
    start_at, end_at = item["current_period_start"], item["current_period_end"]
    proration = await db.fetchval(
        "SELECT object->>'created' FROM sandbox.objects"
        " WHERE type = 'invoice' AND object->>'billing_reason' = 'subscription_update'"
    )
    changed_at = int(proration)
    assert changed_at - clock - start_at < 60  # at the advanced clock
    unused, length = end_at - changed_at, end_at - start_at
    expected = 9900 * unused // length - -(-2900 * unused // length)  # new rounded down, credit rounded up
    assert view["invoices"][1]["amount_minor"] == expected
    assert 0 < expected < 9900 - 2900


async def test_an_upgrade_now_grants_the_new_plans_features_but_its_allowance_only_from_the_next_renewal(
    app, mcp, db: asyncpg.Connection
) -> None:
    async with mcp() as client:
        started = await start(client)
        await advance(app, seconds=30 * 86400 - 3600)  # an hour before the period ends: a tiny proration
        await call(
            client, "change_subscription", subscription_id=started["subscription_id"], product_id="team_ai_monthly",
            idempotency_key="u1", when="now",
        )  # fmt: skip
        view = await settled(client, started["subscription_id"], invoices=2)
    proration = view["invoices"][1]
    assert 0 < proration["amount_minor"] < 100
    lots = await db.fetch("SELECT payment_id, quantity FROM credit_lots WHERE feature = 'llm_tokens'")
    assert [(lot["payment_id"], lot["quantity"]) for lot in lots] == [(started["first_payment_id"], 1_000_000)]
    features = await db.fetch(
        "SELECT feature, expires_at FROM entitlements WHERE payment_id = $1", proration["payment_id"]
    )
    assert [row["feature"] for row in features] == ["pro"]
    assert features[0]["expires_at"] == datetime.fromisoformat(view["current_period_end"])


async def test_a_trial_gives_access_then_the_first_invoice_is_charged_when_it_ends(app, mcp) -> None:
    async with mcp() as client:
        started = await start(client, "pro_ai_trial")
        assert started["status"] == "trialing" and started["first_payment_status"] == "pending"
        trial = await call(client, "check_entitlement", customer_id="ada", feature="pro")
        assert trial["allowed"] is True and trial["reason"] == "trialing"
        assert trial["expires_at"] == started["trial_end"]
        await advance(app, 15)
        view = await settled(client, started["subscription_id"], status="active", invoices=1)
        assert view["invoices"][0]["payment_id"] == started["first_payment_id"]
        assert (await call(client, "check_entitlement", customer_id="ada", feature="pro"))["reason"] == "active"


async def test_a_refunded_renewal_takes_back_that_period(app, mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        started = await start(client)
        await to_period_end(app, started["current_period_end"])
        view = await settled(client, started["subscription_id"], invoices=2)
        renewal = view["invoices"][1]
        refund = await call(client, "refund_payment", payment_id=renewal["payment_id"], idempotency_key="r1")
        assert refund["status"] in ("pending", "succeeded")
        await eventually(lambda: _refunded(client, renewal["payment_id"]))
    periods = await db.fetch("SELECT payment_id, revoked_at FROM entitlements WHERE feature = 'pro' ORDER BY starts_at")
    assert [row["revoked_at"] is not None for row in periods] == [False, True]
    assert periods[1]["payment_id"] == renewal["payment_id"]
    revoked = await db.fetchval("SELECT revoked_at FROM credit_lots WHERE payment_id = $1", renewal["payment_id"])
    assert revoked is not None


async def _refunded(client, payment_id: str) -> bool:
    return (await call(client, "get_payment", payment_id=payment_id))["status"] == "refunded"


async def test_duplicate_and_shuffled_subscription_events_converge_on_the_providers_state(
    settings: Settings, listening_socket, db: asyncpg.Connection
) -> None:
    quiet = settings.model_copy(update={"sandbox_deliver_webhooks": False, "reconcile_interval_seconds": 0})
    async with running_app(quiet, listening_socket) as services:
        from tests.helpers import local_mcp

        app = RunningApp(services)
        async with local_mcp(quiet) as client:
            started = await start(client)
            await to_period_end(app, started["current_period_end"])
            view = await call(client, "get_subscription", subscription_id=started["subscription_id"])
            assert len(view["invoices"]) == 1  # nothing delivered yet
            await advance(app, 31)
            rows = await db.fetch(
                "SELECT payload FROM sandbox.events WHERE type LIKE 'invoice.%' OR type LIKE 'customer.subscription.%'"
            )
            bodies = [row["payload"] if isinstance(row["payload"], str) else json.dumps(row["payload"]) for row in rows]
            deliveries = bodies * 2
            random.Random(12).shuffle(deliveries)
            answers = await asyncio.gather(*(post_webhook(app, body, signed(body)) for body in deliveries))
            assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers]
            view = await settled(client, started["subscription_id"], invoices=3, status="active")
        provider = await provider_subscription(app, started["provider_subscription_id"])
    end = provider["items"]["data"][0]["current_period_end"]
    assert datetime.fromisoformat(view["current_period_end"]).timestamp() == end
    assert [invoice["amount_minor"] for invoice in view["invoices"]] == [2900, 2900, 2900]
    periods = await db.fetch("SELECT starts_at, expires_at FROM entitlements WHERE feature = 'pro' ORDER BY starts_at")
    assert len(periods) == 3 and all(a["expires_at"] == b["starts_at"] for a, b in pairwise(periods))
    assert await db.fetchval("SELECT count(*) FROM credit_lots") == 3


async def test_catalog_sync_makes_one_price_per_plan_and_never_changes_a_price(
    app, database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    port = str(app.settings.port)
    catalog = str(app.settings.catalog_path)
    code, first = await paywarden_command(database_url, "catalog", "sync", port=port, catalog_path=catalog)
    assert code == 0, first
    assert "pro_ai_monthly: created" in first and "team_ai_monthly: created" in first
    code, again = await paywarden_command(database_url, "catalog", "sync", port=port, catalog_path=catalog)
    assert "pro_ai_monthly: unchanged" in again and "team_ai_monthly: unchanged" in again

    dearer = tmp_path / "dearer.toml"
    dearer.write_text(CATALOG.replace("amount_minor = 2900", "amount_minor = 3900", 1))
    code, changed = await paywarden_command(database_url, "catalog", "sync", port=port, catalog_path=str(dearer))
    assert "pro_ai_monthly: replaced" in changed and "team_ai_monthly: unchanged" in changed
    prices = await db.fetch(
        "SELECT object->>'lookup_key' AS key, (object->>'unit_amount')::int AS amount, (object->>'active')::bool AS on"
        " FROM sandbox.objects WHERE type = 'price' AND object->>'product' = 'paywarden_pro_ai_monthly'"
        " ORDER BY created_at"
    )
    assert [(p["key"], p["amount"], p["on"]) for p in prices] == [(None, 2900, False), ("pro_ai_monthly", 3900, True)]
    updates = await sent_to_sandbox(db, "POST", "/v1/prices/")
    assert [update["params"] for update in updates] == [{"active": "false"}]  # only ever deactivated


async def test_the_sandbox_clock_commands(app, database_url: str) -> None:
    port = str(app.settings.port)
    code, shown = await paywarden_command(database_url, "sandbox", "clock", port=port)
    assert code == 0 and shown.startswith("sandbox clock: ")
    code, moved = await paywarden_command(database_url, "sandbox", "advance", "--days", "3", port=port)
    assert code == 0 and "0 renewals, retries and cancellations ran" in moved, moved
    for days in ("0", "-3", "3661"):
        code, refused = await paywarden_command(database_url, "sandbox", "advance", "--days", days, port=port)
        assert (code, refused) == (1, f"paywarden: --days must be between 1 and 3660; got {days}.\n")


async def test_an_invoice_paid_after_the_subscription_ended_is_recorded_granting_nothing_and_flagged(
    app, mcp, db: asyncpg.Connection
) -> None:
    async with mcp() as client:
        started = await start(client)
        await call(client, "cancel_subscription", subscription_id=started["subscription_id"], at_period_end=False)
        truth = await app.services.provider.retrieve_subscription(started["provider_subscription_id"])
        assert truth.current_period_end is not None
        late = ProviderInvoice(
            provider_invoice_id="in_paid_after_the_end", status="paid", amount_minor=2900, currency="USD",
            provider_subscription_id=truth.provider_subscription_id, subscription_id=started["subscription_id"],
            product_id="pro_ai_monthly", period_start=truth.current_period_end,
            period_end=truth.current_period_end + 30 * 86400, billing_reason="subscription_cycle",
        )  # fmt: skip
        async with transaction(app.services.pool) as conn:
            _, _, sub = await subscriptions.apply_event(
                conn, app.services.catalog, app.services.provider.name, truth, late, actor="webhook", reason="test",
                tenant_id=None,
            )  # fmt: skip
        assert sub is not None and sub.status == "canceled"
        answer = await call(client, "check_entitlement", customer_id="ada", feature="pro")
        assert answer["allowed"] is False
    paid = await db.fetchrow(
        "SELECT id, status, attention, grants FROM payments WHERE provider_invoice_id = 'in_paid_after_the_end'"
    )
    assert paid["status"] == "succeeded" and "ended" in paid["attention"]  # the money is recorded, for an operator
    assert await db.fetchval("SELECT count(*) FROM entitlements WHERE payment_id = $1", paid["id"]) == 0
    assert await db.fetchval("SELECT count(*) FROM credit_lots WHERE payment_id = $1", paid["id"]) == 0


async def test_the_sandbox_voids_the_open_invoice_of_a_subscription_it_ends(app, mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        started = await start(client)
        async with local_http(base_url=f"{app.base_url}/sandbox") as http:
            await http.post(
                f"/v1/subscriptions/{started['provider_subscription_id']}",
                data={"default_payment_method": "pm_card_chargeCustomerFail"},
                headers={"Authorization": f"Bearer {app.services.sandbox.api_key}"},
            )
        await to_period_end(app, started["current_period_end"])
        await settled(client, started["subscription_id"], status="past_due")
        open_invoice = await db.fetchval(
            "SELECT id FROM sandbox.objects WHERE type = 'invoice' AND object->>'status' = 'open'"
        )
        ended = await call(
            client, "cancel_subscription", subscription_id=started["subscription_id"], at_period_end=False
        )
        assert ended["status"] == "canceled"
        async with local_http(base_url=app.base_url) as http:
            paid = await http.post(f"/sandbox/invoice/{open_invoice}/pay")
        assert paid.status_code == 400
    invoice = await db.fetchval("SELECT object->>'status' FROM sandbox.objects WHERE id = $1", open_invoice)
    assert invoice == "void"
    provider = await provider_subscription(app, started["provider_subscription_id"])
    assert provider["status"] == "canceled"
    assert await db.fetchval("SELECT count(*) FROM payments WHERE status = 'succeeded'") == 1


async def test_a_renewal_paid_entirely_from_the_customers_credit_still_grants_its_period(
    app, mcp, db: asyncpg.Connection
) -> None:
    async with mcp() as client:
        started = await start(client, "team_ai_monthly")
        await advance(app, 1)
        await call(
            client, "change_subscription", subscription_id=started["subscription_id"], product_id="pro_ai_monthly",
            idempotency_key="c1", when="now",
        )  # fmt: skip
        await to_period_end(app, started["current_period_end"])  # the downgrade's credit pays the whole renewal
        view = await settled(client, started["subscription_id"], invoices=2, renewed_from=started["current_period_end"])
    renewal = view["invoices"][1]
    assert renewal["amount_minor"] == 0 and renewal["status"] == "succeeded"
    period = await db.fetchrow("SELECT expires_at FROM entitlements WHERE payment_id = $1", renewal["payment_id"])
    assert period["expires_at"] == datetime.fromisoformat(view["current_period_end"])
    lot = await db.fetchrow("SELECT quantity, expires_at FROM credit_lots WHERE payment_id = $1", renewal["payment_id"])
    assert lot["quantity"] == 1_000_000 and lot["expires_at"] == period["expires_at"]


async def item_product(app, provider_subscription_id: str) -> str:
    provider = await provider_subscription(app, provider_subscription_id)
    return provider["items"]["data"][0]["price"]["lookup_key"]


async def test_a_downgrade_now_follows_the_providers_item_and_changing_back_charges_the_proration(
    app, mcp, db: asyncpg.Connection
) -> None:
    async with mcp() as client:
        started = await start(client, "team_ai_monthly")
        await advance(app, 1)
        down = await call(
            client, "change_subscription", subscription_id=started["subscription_id"], product_id="pro_ai_monthly",
            idempotency_key="c1", when="now",
        )  # fmt: skip
        assert down["product_id"] == "pro_ai_monthly" and down["pending_product_id"] is None
        up = await call(
            client, "change_subscription", subscription_id=started["subscription_id"], product_id="team_ai_monthly",
            idempotency_key="c2", when="now",
        )  # fmt: skip
        assert up["product_id"] == "team_ai_monthly"
        await settled(client, started["subscription_id"], invoices=2)
    assert await item_product(app, started["provider_subscription_id"]) == "team_ai_monthly"
    reasons = await db.fetch(
        "SELECT object->>'billing_reason' AS reason FROM sandbox.objects WHERE type = 'invoice' ORDER BY created_at"
    )
    assert [row["reason"] for row in reasons] == ["subscription_create", "subscription_update"]
    assert await db.fetchval("SELECT sum(quantity) FROM credit_lots") == 5_000_000  # one allowance, not two


async def test_changing_back_now_to_the_plan_paid_for_cancels_the_scheduled_change_without_a_charge(
    app, mcp, db: asyncpg.Connection
) -> None:
    async with mcp() as client:
        started = await start(client, "team_ai_monthly")
        await advance(app, 10)
        scheduled = await call(
            client, "change_subscription", subscription_id=started["subscription_id"], product_id="pro_ai_monthly",
            idempotency_key="c1",
        )  # fmt: skip
        assert scheduled["product_id"] == "team_ai_monthly" and scheduled["pending_product_id"] == "pro_ai_monthly"
        back = await call(
            client, "change_subscription", subscription_id=started["subscription_id"], product_id="team_ai_monthly",
            idempotency_key="c2", when="now",
        )  # fmt: skip
        assert back["product_id"] == "team_ai_monthly" and back["pending_product_id"] is None
    assert await item_product(app, started["provider_subscription_id"]) == "team_ai_monthly"
    assert await db.fetchval("SELECT count(*) FROM sandbox.objects WHERE type = 'invoice'") == 1


async def test_a_plan_change_meets_the_limits_and_the_approval_a_start_of_the_new_plan_would(
    app, mcp, api_key: str, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with mcp() as client:
        started = await start(client)
    monkeypatch.setattr(app.services.settings, "approval_threshold_minor", 5000)  # team (99.00) needs approval
    async with api_client(app.base_url, api_key) as http:
        refused = await http.post(
            f"/v1/subscriptions/{started['subscription_id']}/change",
            json={"product_id": "team_ai_monthly", "when": "now"}, headers={"Idempotency-Key": "c1"},
        )  # fmt: skip
        assert refused.status_code == 409 and "approval" in refused.json()["detail"], refused.text
        monkeypatch.setattr(app.services.settings, "approval_threshold_minor", 1_000_000)
        monkeypatch.setattr(app.services.settings, "max_charge_minor", 5000)
        limited = await http.post(
            f"/v1/subscriptions/{started['subscription_id']}/change",
            json={"product_id": "team_ai_monthly"}, headers={"Idempotency-Key": "c2"},
        )  # fmt: skip
        assert limited.status_code == 403 and limited.json()["code"] == "spend_limit_exceeded", limited.text
    assert await item_product(app, started["provider_subscription_id"]) == "pro_ai_monthly"
    assert await db.fetchval("SELECT count(*) FROM sandbox.objects WHERE type = 'invoice'") == 1
    sub = await db.fetchrow("SELECT product_id, pending_product_id FROM subscriptions")
    assert tuple(sub) == ("pro_ai_monthly", None)
    monkeypatch.setattr(app.services.settings, "max_charge_minor", 1_000_000)
    monkeypatch.setattr(app.services.settings, "approval_threshold_minor", 5000)
    async with mcp(elicitation_callback=approve_everything) as client:  # the person says yes
        changed = await call(
            client, "change_subscription", subscription_id=started["subscription_id"], product_id="team_ai_monthly",
            idempotency_key="c3",
        )  # fmt: skip
    assert changed["pending_product_id"] == "team_ai_monthly"


async def test_a_plan_change_that_cannot_be_made_is_refused_before_anyone_is_asked(
    app, mcp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.services.settings, "approval_threshold_minor", 5000)  # team (99.00) needs approval
    asked: list[object] = []

    async def person(context, params):
        asked.append(params)
        return ElicitResult(action="accept", content={"approve": True})

    async with mcp(elicitation_callback=person) as client:
        unpaid = await call(
            client, "start_subscription", customer_id="ada", product_id="pro_ai_monthly", idempotency_key="s1"
        )  # no card: the first invoice waits for the person
        asked.clear()
        refused = await call_error(
            client, "change_subscription", subscription_id=unpaid["subscription_id"], product_id="team_ai_monthly",
            idempotency_key="c1",
        )  # fmt: skip
    assert unpaid["status"] == "incomplete" and "is incomplete; only a live one can change plans" in refused
    assert asked == []


async def test_an_older_copy_of_the_providers_subscription_never_rolls_it_back(
    app, mcp, db: asyncpg.Connection
) -> None:
    async with mcp() as client:
        started = await start(client)
        older = await app.services.provider.retrieve_subscription(started["provider_subscription_id"])
        await to_period_end(app, started["current_period_end"])
        renewed = await settled(client, started["subscription_id"], invoices=2, status="active")
        await eventually(lambda: _period_moved(client, started))
        stale = replace(older, status="past_due", latest_invoice=None)  # fetched before the renewal, applied after
        async with transaction(app.services.pool) as conn:
            outcome, _, _ = await subscriptions.apply_event(
                conn, app.services.catalog, app.services.provider.name, stale, None, actor="webhook", reason="test",
                tenant_id=None,
            )  # fmt: skip
        assert outcome == "ignored"
        after = await call(client, "get_subscription", subscription_id=started["subscription_id"])
    assert after["status"] == "active"
    item = (await provider_subscription(app, started["provider_subscription_id"]))["items"]["data"][0]
    assert datetime.fromisoformat(after["current_period_start"]).timestamp() == item["current_period_start"]
    assert datetime.fromisoformat(after["current_period_end"]).timestamp() == item["current_period_end"]
    assert after["current_period_end"] > renewed["current_period_start"]
    assert await db.fetchval("SELECT count(*) FROM subscription_audit WHERE to_status = 'past_due'") == 0


async def _period_moved(client, started: dict) -> bool:
    view = await call(client, "get_subscription", subscription_id=started["subscription_id"])
    return view["current_period_start"] != started["current_period_start"]
