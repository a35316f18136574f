"""Spend limits, enforced inside the database transaction, and the duplicate-charge guard."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.helpers import LOCAL, approve_everything, call, call_error, local_mcp


def limited(app, **limits):
    """An in-process MCP client of a server with these limits (the running app's sandbox is its provider)."""
    return local_mcp(app.settings.model_copy(update=limits))


def ad_hoc(key: str, amount: int, currency: str = "USD", customer: str = "cus_l") -> dict:
    return {
        "customer_id": customer,
        "idempotency_key": key,
        "amount_minor": amount,
        "currency": currency,
        "description": f"order {key}",
        "payment_method": "pm_card_visa",
    }


async def test_a_charge_over_the_per_charge_limit_is_refused(app, db: asyncpg.Connection) -> None:
    async with limited(app, max_charge_minor=1000, approval_threshold_minor=10_000) as client:
        message = await call_error(client, "create_charge", **ad_hoc("big", 1500))
    assert "over the per-charge limit of 10.00 USD" in message and "15.00 USD" in message
    assert await db.fetchval("SELECT count(*) FROM payments") == 0


async def test_only_allowed_currencies_are_charged(app, db: asyncpg.Connection) -> None:
    async with limited(app, allowed_currencies="usd, eur") as client:
        message = await call_error(client, "create_charge", **ad_hoc("jpy", 500, "JPY"))
        await call(client, "create_charge", **ad_hoc("eur", 500, "EUR"))
    assert "JPY is not an allowed currency here (allowed: EUR, USD)" in message
    assert await db.fetchval("SELECT count(*) FROM payments") == 1


async def test_the_daily_limit_says_what_is_spent_and_when_it_frees_up(app, db: asyncpg.Connection) -> None:
    async with limited(app, daily_limit_minor=1000, approval_threshold_minor=10_000) as client:
        first = await call(client, "create_charge", **ad_hoc("d1", 600))
        message = await call_error(client, "create_charge", **ad_hoc("d2", 500))
        other_customer = await call(client, "create_charge", **ad_hoc("d3", 500, customer="cus_other"))
        other_currency = await call(client, "create_charge", **ad_hoc("d4", 500, "EUR"))
    assert first["status"] == other_customer["status"] == other_currency["status"] == "succeeded"
    assert "daily limit of 10.00 USD" in message and "already charged in the last 24 hours: 6.00 USD" in message
    frees_at = await db.fetchval(
        "SELECT created_at + interval '24 hours' FROM payments WHERE id = $1", first["payment_id"]
    )
    assert f"{frees_at:%Y-%m-%d %H:%M:%S} UTC" in message


async def test_failed_charges_do_not_count_towards_the_daily_limit(app) -> None:
    async with limited(app, daily_limit_minor=1000, approval_threshold_minor=10_000) as client:
        declined = {**ad_hoc("f1", 900), "payment_method": "pm_card_chargeDeclined"}
        assert (await call(client, "create_charge", **declined))["status"] == "failed"
        assert (await call(client, "create_charge", **ad_hoc("f2", 900)))["status"] == "succeeded"


async def test_concurrent_charges_straddling_the_daily_limit_never_overshoot(app, db: asyncpg.Connection) -> None:
    """20 charges of 3.00 at once against a 25.00 limit: at most 8 go through, whatever the interleaving."""
    clients = [limited(app, daily_limit_minor=2500, approval_threshold_minor=10_000) for _ in range(2)]
    async with clients[0] as a, clients[1] as b:
        results = await asyncio.gather(
            *(client.call_tool("create_charge", ad_hoc(f"c{i}", 300)) for i, client in enumerate([a, b] * 10))
        )
    refused = [r.content[0].text for r in results if r.is_error]
    assert len(refused) == 12 and all("daily limit of 25.00 USD" in text for text in refused)
    total = await db.fetchval("SELECT sum(amount_minor) FROM payments WHERE status <> 'failed'")
    assert total == 2400


async def test_a_repeat_charge_under_a_new_key_needs_approval_naming_the_first(mcp, db: asyncpg.Connection) -> None:
    charge = {"customer_id": "cus_dup", "product_id": "pro_monthly", "payment_method": "pm_card_visa"}
    async with mcp() as client:
        first = await call(client, "create_charge", idempotency_key="first", **charge)
        second = await call(client, "create_charge", idempotency_key="second", **charge)
    assert first["status"] == "succeeded"
    assert second["status"] == "requires_approval" and second["provider_payment_id"] is None
    assert first["payment_id"] in second["approval_reason"]
    assert "paywarden approve" in second["next_step"]
    assert await db.fetchval("SELECT count(*) FROM sandbox.payment_intents") == 1


async def test_the_duplicate_window_can_be_turned_off(app) -> None:
    charge = {"customer_id": "cus_dup", "product_id": "pro_monthly", "payment_method": "pm_card_visa"}
    async with limited(app, duplicate_window_seconds=0) as client:
        await call(client, "create_charge", idempotency_key="one", **charge)
        again = await call(client, "create_charge", idempotency_key="two", **charge)
    assert again["status"] == "succeeded"


@pytest.mark.parametrize(("amount", "currency"), [(1234, "KWD"), (1050, "MGA")])
async def test_amounts_stripe_cannot_charge_exactly_are_refused(mcp, db, amount: int, currency: str) -> None:
    async with mcp(elicitation_callback=approve_everything) as client:
        message = await call_error(client, "create_charge", **ad_hoc("x", amount, currency))
    assert "cannot charge" in message and "exactly" in message
    assert await db.fetchval("SELECT count(*) FROM payments") == 0


async def test_the_window_frees_up_when_enough_old_charges_leave_it(app, db: asyncpg.Connection) -> None:
    async with limited(app, daily_limit_minor=1000, approval_threshold_minor=10_000) as client:
        for n, amount in enumerate((300, 300, 300)):
            await call(client, "create_charge", **ad_hoc(f"w{n}", amount))
        await db.execute(
            "UPDATE payments SET charged_at = now() - make_interval(hours => (20 - n)::int) FROM "
            "(SELECT id AS pid, row_number() OVER (ORDER BY created_at) AS n FROM payments) o WHERE id = pid"
        )
        message = await call_error(client, "create_charge", **ad_hoc("w9", 500))
    second_oldest = await db.fetchval(
        "SELECT charged_at + interval '24 hours' FROM payments ORDER BY charged_at OFFSET 1 LIMIT 1"
    )
    assert f"{second_oldest:%Y-%m-%d %H:%M:%S} UTC" in message  # 900 + 500 fits only once two have left


async def test_held_charges_count_and_refunds_give_room_back(app, db: asyncpg.Connection) -> None:
    async with limited(app, daily_limit_minor=1000, approval_threshold_minor=500) as client:
        held = await call(client, "create_charge", **ad_hoc("h1", 600))  # over the threshold: held
        assert held["status"] == "requires_approval"
        refused = await call_error(client, "create_charge", **ad_hoc("h2", 450))
        assert "already charged in the last 24 hours: 6.00 USD" in refused
        await db.execute("UPDATE payments SET status = 'canceled' WHERE id = $1", held["payment_id"])
        paid = await call(client, "create_charge", **ad_hoc("h3", 450))
        await call(client, "refund_payment", payment_id=paid["payment_id"], idempotency_key="r", amount_minor=400)
        fits = await call(client, "create_charge", **ad_hoc("h4", 500))
    assert fits["status"] == "succeeded"  # 50 still held by the partly refunded charge + 500 <= 1000


async def test_an_ad_hoc_repeat_is_caught_by_amount_and_description(app) -> None:
    async with limited(app, approval_threshold_minor=10_000) as client:
        first = await call(client, "create_charge", **ad_hoc("a1", 700))
        repeat = await call(client, "create_charge", **{**ad_hoc("a2", 700), "description": "order a1"})
        different = await call(client, "create_charge", **ad_hoc("a3", 700))  # its own description
    assert repeat["status"] == "requires_approval" and first["payment_id"] in repeat["approval_reason"]
    assert different["status"] == "succeeded"


async def test_approving_after_the_window_moved_still_respects_the_limit(app, db: asyncpg.Connection) -> None:
    from tests.helpers import paywarden_command

    async with limited(app, daily_limit_minor=10_000, approval_threshold_minor=5000) as client:
        held = await call(client, "create_charge", **ad_hoc("old", 6000))
        await db.execute("UPDATE payments SET charged_at = now() - interval '25 hours'")
        await call(client, "create_charge", **ad_hoc("new", 4500))
    code, out = await paywarden_command(
        app.settings.database_url,
        "approve",
        held["payment_id"],
        port=str(app.settings.port),
        daily_limit_minor="10000",
    )
    assert code == 1 and "daily limit of 100.00 USD" in out
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", held["payment_id"]) == "requires_approval"


async def test_a_yes_does_not_cover_a_reason_the_person_was_not_shown(app, db: asyncpg.Connection) -> None:
    from server import charges
    from server.charges import ChargeInput

    services = app.services
    request = ChargeInput(
        customer_id="cus_y",
        idempotency_key="k",
        amount_minor=9000,
        currency="USD",
        description="GPU",
        payment_method="pm_card_visa",
        caller=LOCAL,
    )
    new = charges.price(request, services.catalog, services.provider)
    payment, _ = await charges.record(services, request, new, "approved", approved_for=["something else"])
    assert payment.status == "requires_approval"
