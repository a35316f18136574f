"""Saving a card and paying, as a person does it: the sandbox's hosted pages in headless Chromium (Debian's
package, driven by Playwright), against an in-process `paywarden up` with PAYWARDEN_PUBLIC_URL set, so the
provider's page sends the person back to paywarden's own pages, as Stripe's Checkout does."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator

import pytest
from mcp import Client
from playwright.async_api import Page, expect

from server.config import Settings
from tests.helpers import call, eventually, local_mcp, running_app


@pytest.fixture
async def public(settings: Settings, listening_socket: socket.socket) -> AsyncIterator[Settings]:
    """`paywarden up` reached at its public address (its settings; an MCP client is opened in the test's
    own task, as the SDK's task groups require)."""
    reached = settings.model_copy(update={"public_url": settings.base_url})
    async with running_app(reached, listening_socket):
        yield reached


async def test_a_card_saved_in_a_browser_is_charged_without_the_person(public: Settings, page: Page) -> None:
    async with local_mcp(public) as client:
        await _save_and_charge(client, public.base_url, page)


async def _save_and_charge(client: Client, base: str, page: Page) -> None:
    setup = await call(client, "setup_payment_method", customer_id="ivy", idempotency_key="s1")
    await page.goto(setup["setup_url"])
    await expect(page.get_by_role("heading", name="Save a card")).to_be_visible()
    await page.get_by_role("button", name=re.compile(r"^Save pm_card_visa")).click()
    await expect(page).to_have_url(f"{base}/cards/saved")  # Checkout's success_url
    await expect(page.get_by_text("Your card is saved for later payments.")).to_be_visible()

    view = await eventually(lambda: _with_a_card(client, "ivy"))
    assert [(card["brand"], card["last4"], card["is_default"]) for card in view["payment_methods"]] == [
        ("visa", "4242", True)
    ]
    charge = await call(
        client, "create_charge", customer_id="ivy", idempotency_key="c1", product_id="pro_monthly",
        payment_method="saved",
    )  # fmt: skip
    assert charge["status"] == "succeeded"  # off-session: no page, no person
    assert (await call(client, "check_entitlement", customer_id="ivy", feature="pro"))["allowed"] is True


async def test_a_person_pays_on_the_checkout_page_after_a_declined_card(public: Settings, page: Page) -> None:
    async with local_mcp(public) as client:
        await _pay_after_a_decline(client, public.base_url, page)


async def _pay_after_a_decline(client: Client, base: str, page: Page) -> None:
    charge = await call(client, "create_charge", customer_id="jo", idempotency_key="c1", product_id="day_pass")
    await page.goto(charge["next_action_url"])
    await page.get_by_role("button", name="Use a declined card").click()
    await expect(page.get_by_text("Your card was declined. Try another card.")).to_be_visible()
    await page.get_by_role("button", name=re.compile(r"^Pay ")).click()
    await expect(page).to_have_url(f"{base}/payments/complete")
    paid = await eventually(lambda: _status(client, charge["payment_id"], "succeeded"))
    assert paid["provider_payment_id"].startswith("pi_")


async def _with_a_card(client: Client, customer_id: str) -> dict | None:
    view = await call(client, "get_customer", customer_id=customer_id)
    return view if view["payment_methods"] else None


async def _status(client: Client, payment_id: str, wanted: str) -> dict | None:
    payment = await call(client, "get_payment", payment_id=payment_id)
    return payment if payment["status"] == wanted else None
