"""Declines, and payments a person completes on the hosted page."""

from __future__ import annotations

import re

import asyncpg
import httpx

from tests.helpers import call, eventually, local_http


async def status_becomes(client, payment_id: str, wanted: str):
    payment = await call(client, "get_payment", payment_id=payment_id)
    return payment if payment["status"] == wanted else None


async def test_declined_card_fails_and_grants_nothing(mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        charge = await call(
            client,
            "create_charge",
            customer_id="cus_2",
            idempotency_key="d1",
            product_id="pro_monthly",
            payment_method="pm_card_chargeDeclined",
        )
        assert charge["status"] == "failed"
        assert "declined" in charge["failure_reason"]
        assert charge["provider_payment_id"].startswith("pi_")

        answer = await call(client, "check_entitlement", customer_id="cus_2", feature="pro")
        assert answer["allowed"] is False and answer["reason"] == "no_entitlement"
    assert await db.fetchval("SELECT count(*) FROM entitlements") == 0


async def test_unknown_payment_method_fails_with_the_providers_reason(mcp) -> None:
    async with mcp() as client:
        charge = await call(
            client,
            "create_charge",
            customer_id="cus_2",
            idempotency_key="d2",
            amount_minor=500,
            currency="USD",
            payment_method="pm_card_nonsense",
        )
        assert charge["status"] == "failed"
        assert "No such PaymentMethod" in charge["failure_reason"]


async def test_authentication_required_is_completed_on_the_hosted_page(mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        charge = await call(
            client,
            "create_charge",
            customer_id="cus_3",
            idempotency_key="a1",
            product_id="pro_monthly",
            payment_method="pm_card_authenticationRequired",
        )
        assert charge["status"] == "requires_action"
        url = charge["next_action_url"]
        assert url and "/sandbox/pay/pi_" in url

        pending = await call(client, "check_entitlement", customer_id="cus_3", feature="pro")
        assert pending["allowed"] is False
        assert pending["reason"] == "payment_pending" and pending["pending_payment_id"] == charge["payment_id"]

        await click(url, "Pay")
        paid = await eventually(lambda: status_becomes(client, charge["payment_id"], "succeeded"))
        assert paid["timeline"][-1]["actor"] == "webhook"
        assert paid["next_action_url"] is None

        allowed = await call(client, "check_entitlement", customer_id="cus_3", feature="pro")
        assert allowed["allowed"] is True


async def test_no_payment_method_gets_a_payment_page_where_a_declined_card_may_be_followed_by_another(
    mcp, db: asyncpg.Connection
) -> None:
    async with mcp() as client:
        charge = await call(client, "create_charge", customer_id="cus_4", idempotency_key="p1", product_id="day_pass")
        assert charge["status"] == "requires_action" and "/sandbox/checkout/cs_test_" in charge["next_action_url"]

        await click(charge["next_action_url"], "Use a declined card")
        await eventually(lambda: _event_stored(db, "payment_intent.payment_failed"))
        still_open = await call(client, "get_payment", payment_id=charge["payment_id"])
        assert still_open["status"] == "requires_action"  # one card declined; the page is still open

        await click(charge["next_action_url"], "Pay")
        paid = await eventually(lambda: status_becomes(client, charge["payment_id"], "succeeded"))
        assert paid["provider_payment_id"].startswith("pi_")
        answer = await call(client, "check_entitlement", customer_id="cus_4", feature="pro")
        assert answer["allowed"] is True


async def _event_stored(db: asyncpg.Connection, event_type: str) -> str | None:
    return await db.fetchval("SELECT outcome FROM webhook_events WHERE event_type = $1", event_type)


async def click(page_url: str, button: str) -> str:
    """Open the hosted page as a browser would and submit the form of the named button."""
    async with local_http(follow_redirects=True) as browser:
        page = await browser.get(page_url)
        assert page.status_code == 200 and button in page.text
        forms = re.findall(r"<form method=post action='([^']+)'><button[^>]*>([^<]+)</button>", page.text)
        action = next(action for action, label in forms if label.startswith(button))
        result = await browser.post(httpx.URL(page_url).join(action))
        assert result.status_code == 200, result.text
        return result.text
