"""The page the person must open reaches them, not the model: a client that declared URL-mode elicitation
is sent the payment page (or the page for saving a card) on both protocol versions — 2026-07-28 as an
input-required round, 2025-11-25 as a request in the middle of the call — and the call returns at once,
without waiting for the payment."""

from __future__ import annotations

import asyncpg
import pytest
from mcp.types import ElicitRequestFormParams, ElicitRequestURLParams, ElicitResult

from tests.helpers import call, click, eventually, http_client, new_key, sent_to_sandbox

MODES = ["auto", "legacy"]  # the SDK client's 2026-07-28 rounds, and 2025-11-25 requests mid-call
PAGE = {"customer_id": "cus_p", "idempotency_key": "k1", "product_id": "pro_monthly"}


class Person:
    """An elicitation callback: answers the approval form yes, the page with `page`; records what it saw."""

    def __init__(self, page: str = "accept") -> None:
        self.page = page
        self.seen: list[ElicitRequestFormParams | ElicitRequestURLParams] = []

    async def __call__(self, context, params) -> ElicitResult:
        self.seen.append(params)
        if isinstance(params, ElicitRequestURLParams):
            return ElicitResult(action=self.page)
        return ElicitResult(action="accept", content={"approve": True})

    @property
    def urls(self) -> list[str]:
        return [params.url for params in self.seen if isinstance(params, ElicitRequestURLParams)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("page", ["accept", "decline", "cancel"])
async def test_the_payment_page_is_sent_to_the_person(mcp, db: asyncpg.Connection, mode: str, page: str) -> None:
    person = Person(page)
    async with mcp(elicitation_callback=person, mode=mode) as client:
        charge = await call(client, "create_charge", **PAGE)
    assert charge["status"] == "requires_action" and charge["replayed"] is False
    assert person.urls == [charge["next_action_url"]] and "/sandbox/checkout/cs_test_" in charge["next_action_url"]
    assert charge["payment_page"] == {"accept": "accepted", "decline": "declined", "cancel": "cancelled"}[page]
    left_open = "it stays open, and they may still use next_action_url until it expires" in charge["next_step"]
    assert left_open == (page != "accept")
    assert person.seen[0].message == "To pay 20.00 USD (Pro, 30 days), open this page."
    assert await db.fetchval("SELECT count(*) FROM payments") == 1
    assert len(await sent_to_sandbox(db, "POST", "/v1/checkout/sessions")) == 1  # one page, however many rounds


@pytest.mark.parametrize("mode", MODES)
async def test_approval_then_the_page_in_one_call(mcp, db: asyncpg.Connection, mode: str) -> None:
    person = Person()
    large = {**PAGE, "product_id": None, "amount_minor": 9000, "currency": "USD", "description": "GPU hours"}
    async with mcp(elicitation_callback=person, mode=mode) as client:  # the local caller: client approval
        charge = await call(client, "create_charge", **{k: v for k, v in large.items() if v is not None})
    assert [params.mode for params in person.seen] == ["form", "url"]
    assert "Approve charging customer 'cus_p' 90.00 USD for 'GPU hours'?" in person.seen[0].message
    assert charge["status"] == "requires_action" and charge["payment_page"] == "accepted"
    assert person.urls == [charge["next_action_url"]] and charge["replayed"] is False
    assert await db.fetchval("SELECT count(*) FROM payments") == 1
    first = await db.fetchval("SELECT reason FROM payment_audit ORDER BY id LIMIT 1")
    assert "approved by the person through the MCP client" in first


@pytest.mark.parametrize("mode", MODES)
async def test_the_first_invoices_page_of_a_subscription_is_sent_to_the_person(
    mcp, db: asyncpg.Connection, mode: str
) -> None:
    person = Person()
    async with mcp(elicitation_callback=person, mode=mode) as client:
        started = await call(
            client, "start_subscription", customer_id="cus_sub", product_id="pro_ai_monthly", idempotency_key="s1"
        )
    assert started["status"] == "incomplete" and started["replayed"] is False
    assert person.urls == [started["next_action_url"]] and started["payment_page"] == "accepted"
    assert person.seen[-1].message == "To start the pro_ai_monthly subscription, pay its first invoice on this page."
    assert await db.fetchval("SELECT count(*) FROM subscriptions") == 1


@pytest.mark.parametrize("mode", MODES)
async def test_the_page_for_saving_a_card_is_sent_to_the_person(mcp, db: asyncpg.Connection, mode: str) -> None:
    person = Person("decline")
    async with mcp(elicitation_callback=person, mode=mode) as client:
        setup = await call(client, "setup_payment_method", customer_id="cus_s", idempotency_key="s1")
        again = await call(client, "setup_payment_method", customer_id="cus_s", idempotency_key="s1")
    assert (
        person.urls == [setup["setup_url"], setup["setup_url"]] and "/sandbox/checkout/cs_test_" in setup["setup_url"]
    )
    assert setup["setup_page"] == "declined" and "may still use setup_url" in setup["next_step"]
    assert setup["replayed"] is False and again["replayed"] is True
    assert await db.fetchval("SELECT count(*) FROM payment_setups") == 1


async def test_a_client_that_cannot_show_pages_gets_the_link_to_share(mcp) -> None:
    async with mcp() as client:  # no elicitation callback: no elicitation capability
        charge = await call(client, "create_charge", **PAGE)
    assert charge["payment_page"] == "not_sent" and charge["next_action_url"]


async def test_paid_at_once_sends_no_page(mcp) -> None:
    person = Person()
    async with mcp(elicitation_callback=person) as client:
        charge = await call(client, "create_charge", **{**PAGE, "payment_method": "pm_card_visa"})
    assert charge["status"] == "succeeded" and person.seen == [] and charge["payment_page"] == "not_sent"


@pytest.mark.parametrize(("mode", "sent"), [("auto", True), ("legacy", False)])
async def test_over_stateless_http(app, database_url: str, mode: str, sent: bool) -> None:
    """2026-07-28 rounds are plain requests, so they work over `paywarden up`'s stateless HTTP; a 2025-11-25
    client there has no back channel, so it gets the link in the result."""
    person = Person()
    key = await new_key(database_url)
    async with http_client(f"{app.base_url}/mcp", key, elicitation_callback=person, mode=mode) as client:
        charge = await call(client, "create_charge", **PAGE)
    assert charge["payment_page"] == ("accepted" if sent else "not_sent")
    assert person.urls == ([charge["next_action_url"]] if sent else [])


@pytest.mark.parametrize("mode", MODES)
async def test_a_saved_card_that_needs_the_person_sends_them_the_page_to_authenticate(mcp, mode: str) -> None:
    person = Person()
    async with mcp(elicitation_callback=person, mode=mode) as client:
        setup = await call(client, "setup_payment_method", customer_id="cus_a", idempotency_key="s1")
        await click(setup["setup_url"], "Save pm_card_authenticationRequired")
        await eventually(lambda: _has_a_card(client, "cus_a"))
        charge = await call(
            client, "create_charge", customer_id="cus_a", idempotency_key="k1", product_id="day_pass",
            payment_method="saved",
        )  # fmt: skip
    assert charge["status"] == "requires_action" and "/sandbox/pay/pi_" in charge["next_action_url"]
    assert person.urls == [setup["setup_url"], charge["next_action_url"]] and charge["payment_page"] == "accepted"


async def _has_a_card(client, customer_id: str) -> bool:
    return bool((await call(client, "get_customer", customer_id=customer_id))["payment_methods"])
