"""Disputes: the provider's dispute events stored once and applied once, what a dispute does to what its
payment granted (suspend vs keep), won and lost, duplicates and events out of order."""

from __future__ import annotations

import json
import time
from typing import Any

import asyncpg
import pytest

from server import inbox
from server.config import Settings
from server.ledger import dispute_machine
from server.providers.sandbox import movements, store
from server.providers.stripe import event_from_payload
from server.services import open_services
from tests.helpers import (
    OWN_PASSWORD,
    assert_ledger_matches,
    call,
    call_error,
    console_client,
    eventually,
    intent_event,
    new_operator,
    paywarden_command,
    quiet_settings,
    signed,
    visible_text,
)
from tests.helpers import post_webhook as post


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A customer may buy the same product twice in a row here (a second lot of credits, to dispute one)."""
    return settings.model_copy(update={"duplicate_window_seconds": 0})


async def _charge(mcp: Any, product_id: str, card: str, key: str = "d1", customer: str = "cus_dis") -> dict:
    async with mcp() as client:
        return await call(
            client,
            "create_charge",
            customer_id=customer,
            idempotency_key=key,
            product_id=product_id,
            payment_method=card,
        )


async def _dispute(db: asyncpg.Connection, payment_id: str, status: str | None = None) -> asyncpg.Record:
    async def found() -> asyncpg.Record | None:
        row = await db.fetchrow("SELECT * FROM disputes WHERE payment_id = $1", payment_id)
        return row if row is not None and (status is None or row["status"] == status) else None

    return await eventually(found)


async def _entitlement(mcp: Any, feature: str = "pro", customer: str = "cus_dis", quantity: int = 1) -> dict:
    async with mcp() as client:
        return await call(client, "check_entitlement", customer_id=customer, feature=feature, quantity=quantity)


async def test_the_dispute_test_card_opens_a_dispute_that_suspends_access_until_it_is_won(
    mcp, app, db, database_url
) -> None:
    paid = await _charge(mcp, "pro_monthly", "pm_card_createDispute")
    assert paid["status"] == "succeeded"
    opened = await _dispute(db, paid["payment_id"])
    await eventually(lambda: db.fetchval("SELECT funds_withdrawn_at IS NOT NULL FROM disputes"))
    assert opened["id"].startswith("du_") and opened["reason"] == "fraudulent" and opened["amount_minor"] == 2000
    assert opened["status"] == "needs_response" and opened["evidence_due_by"] is not None
    answer = await _entitlement(mcp)
    assert answer["allowed"] is False and answer["reason"] == "disputed"
    async with mcp() as client:
        shown = await call(client, "get_payment", payment_id=paid["payment_id"])
        customer = await call(client, "get_customer", customer_id="cus_dis")
    (dispute,) = shown["disputes"]
    assert dispute["dispute_id"] == opened["id"] and dispute["funds_withdrawn"] and dispute["access_suspended"]
    assert [d["dispute_id"] for d in customer["disputes"]] == [opened["id"]]

    code, said = await paywarden_command(database_url, "sandbox", "dispute", "close", opened["id"], "--won")
    assert code == 0, said
    await _dispute(db, paid["payment_id"], "won")
    assert (await _entitlement(mcp))["allowed"] is True
    trail = await db.fetch("SELECT actor, action, from_status, to_status FROM dispute_audit ORDER BY id")
    assert [(row["action"], row["to_status"]) for row in trail][:1] == [("opened", "needs_response")]
    assert ("moved", "won") in [(row["action"], row["to_status"]) for row in trail]
    assert {row["actor"] for row in trail} == {"webhook"}
    query = "SELECT event_type, outcome FROM webhook_events WHERE event_type LIKE 'charge.dispute%'"
    types = await eventually(lambda: _all_four(db, query))
    assert sorted(row["event_type"] for row in types) == sorted([
        "charge.dispute.created", "charge.dispute.funds_withdrawn", "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
    ])  # fmt: skip
    assert {row["outcome"] for row in types} == {"applied"}
    told = await db.fetch("SELECT type, payload FROM outbox_events WHERE type LIKE 'dispute.%' ORDER BY seq")
    assert [row["type"] for row in told] == ["dispute.opened", "dispute.closed"]
    assert json.loads(told[-1]["payload"])["data"]["status"] == "won"


async def _all_four(db: asyncpg.Connection, query: str) -> list[asyncpg.Record] | None:
    rows = await db.fetch(query)
    return rows if len(rows) == 4 else None


async def test_a_lost_dispute_revokes_like_a_full_refund(mcp, app, db, database_url) -> None:
    paid = await _charge(mcp, "pro_monthly", "pm_card_createDispute")
    opened = await _dispute(db, paid["payment_id"])
    code, said = await paywarden_command(database_url, "sandbox", "dispute", "close", opened["id"], "--lost")
    assert code == 0, said
    await _dispute(db, paid["payment_id"], "lost")
    answer = await _entitlement(mcp)
    assert answer["allowed"] is False and answer["reason"] != "disputed"
    refused = await _refund(mcp, paid["payment_id"], "r1")  # the bank gave the money back: no refund on top
    assert isinstance(refused, str) and f"dispute {opened['id']} was lost" in refused
    assert "nothing left to refund" in refused and "evidence" not in refused
    async with mcp() as client:
        shown = await call(client, "get_payment", payment_id=paid["payment_id"])
    assert shown["next_step"].startswith(f"Charged back: dispute {opened['id']} was lost")
    assert await db.fetchval("SELECT count(*) FROM refunds") == 0
    assert await db.fetchval("SELECT revoked_at IS NOT NULL FROM entitlements") is True
    assert await db.fetchval("SELECT count(*) FROM outbox_events WHERE type = 'entitlement.revoked'") == 1
    again, said = await paywarden_command(database_url, "sandbox", "dispute", "close", opened["id"], "--won")
    assert again == 1 and "already closed" in said
    unknown, said = await paywarden_command(database_url, "sandbox", "dispute", "close", "du_nope", "--lost")
    assert unknown == 1 and "no dispute 'du_nope'" in said


async def _refund(mcp: Any, payment_id: str, key: str) -> dict | str:
    """The refund, or the message the agent reads when it is refused."""
    async with mcp() as client:
        result = await client.call_tool("refund_payment", {"payment_id": payment_id, "idempotency_key": key})
    if result.is_error:
        return " ".join(part.text for part in result.content if hasattr(part, "text"))
    return result.structured_content


async def test_a_charged_back_payment_is_refunded_only_once_the_dispute_is_won(mcp, app, db, database_url) -> None:
    """The bank has taken the money back: a refund would pay the customer twice. Refused, saying why and what
    to do instead, nothing recorded; once the merchant wins the dispute, the refund goes through."""
    paid = await _charge(mcp, "pro_monthly", "pm_card_createDispute")
    opened = await _dispute(db, paid["payment_id"], "needs_response")
    refused = await _refund(mcp, paid["payment_id"], "r1")
    assert isinstance(refused, str) and f"dispute {opened['id']} is open (needs_response)" in refused
    async with mcp() as client:
        shown = await call(client, "get_payment", payment_id=paid["payment_id"])
    assert shown["status"] == "succeeded" and shown["next_step"].startswith("Disputed: the customer's bank opened")
    assert "is paused until it closes. Do not refund it" in shown["next_step"]
    assert "taken 20.00 USD back" in refused and "paywarden disputes evidence" in refused
    assert await db.fetchval("SELECT count(*) FROM refunds") == 0
    code, said = await paywarden_command(database_url, "sandbox", "dispute", "close", opened["id"], "--won")
    assert code == 0, said
    await _dispute(db, paid["payment_id"], "won")
    refunded = await _refund(mcp, paid["payment_id"], "r2")
    assert isinstance(refunded, dict) and refunded["status"] == "succeeded", refunded
    assert refunded["payment"]["status"] == "refunded"


async def test_an_inquiry_moves_no_money_and_a_refund_may_settle_it(mcp, app, db) -> None:
    paid = await _charge(mcp, "pro_monthly", "pm_card_visa")
    body = _dispute_event("charge.dispute.created", paid, "warning_needs_response", event_id="evt_w1")
    assert (await post(app, body, signed(body))).json()["outcome"] == "applied"
    refunded = await _refund(mcp, paid["payment_id"], "r1")
    assert isinstance(refunded, dict) and refunded["status"] == "succeeded", refunded


async def test_a_refund_asked_before_the_chargeback_is_heard_of_is_refused_by_the_provider(mcp, app, db) -> None:
    """The bank's chargeback reached the provider, not yet paywarden: the refund is recorded and sent, the
    provider refuses it (charge_disputed, as Stripe does), and it fails, holding nothing."""
    paid = await _charge(mcp, "pro_monthly", "pm_card_visa")
    intent = await db.fetchval("SELECT provider_payment_id FROM payments WHERE id = $1", paid["payment_id"])
    async with app.services.pool.acquire() as conn:
        await movements.open_dispute(conn, await store.get_intent(conn, intent))  # at the provider only: no event
    refunded = await _refund(mcp, paid["payment_id"], "r1")
    assert isinstance(refunded, dict) and refunded["status"] == "failed", refunded
    assert "has been charged back; cannot issue a refund" in refunded["failure_reason"]
    assert refunded["payment"]["status"] == "succeeded" and refunded["payment"]["refunded_minor"] == 0


async def test_credits_are_held_while_disputed_and_given_back_when_won(mcp, app, db, database_url) -> None:
    paid = await _charge(mcp, "credits_100k", "pm_card_visa", key="c0")
    async with mcp() as client:
        await call(
            client, "consume_credits", customer_id="cus_dis", feature="llm_tokens", quantity=1000, idempotency_key="u1"
        )
    disputed = await _charge(mcp, "credits_100k", "pm_card_createDispute", key="c1")
    opened = await _dispute(db, disputed["payment_id"])
    answer = await _entitlement(mcp, "llm_tokens", quantity=150_000)
    assert answer["reason"] == "disputed" and answer["balance"]["remaining"] == 99_000
    async with mcp() as client:  # short only by what the dispute holds: no top-up offered
        short = await call_error(
            client,
            "consume_credits",
            customer_id="cus_dis",
            feature="llm_tokens",
            quantity=150_000,
            idempotency_key="u2",
        )
    assert "99000 remaining" in short and "100000 more are held while the payment" in short
    assert "Do not charge again" in short and "create_charge" not in short
    async with mcp() as client:  # more than the dispute holds: a top-up is the answer
        beyond = await call_error(
            client,
            "consume_credits",
            customer_id="cus_dis",
            feature="llm_tokens",
            quantity=500_000,
            idempotency_key="u3",
        )
    assert "Offer the customer a top-up" in beyond and "disputed" not in beyond
    await assert_ledger_matches(db, "cus_dis", "llm_tokens")
    code, _ = await paywarden_command(database_url, "sandbox", "dispute", "close", opened["id"], "--won")
    assert code == 0
    await _dispute(db, disputed["payment_id"], "won")
    answer = await _entitlement(mcp, "llm_tokens", quantity=150_000)
    assert answer["allowed"] is True and answer["balance"]["remaining"] == 199_000
    await assert_ledger_matches(db, "cus_dis", "llm_tokens")
    assert paid["status"] == "succeeded"


def _dispute_event(event_type: str, payment: dict, status: str, *, event_id: str, dispute_id: str = "du_t1") -> str:
    obj = {
        "id": dispute_id,
        "object": "dispute",
        "amount": payment["amount_minor"],
        "currency": payment["currency"].lower(),
        "charge": "ch_x",
        "payment_intent": payment["provider_payment_id"],
        "reason": "product_not_received",
        "status": status,
        "evidence_details": {"due_by": int(time.time()) + 86_400},
    }
    return json.dumps({"id": event_id, "object": "event", "type": event_type, "data": {"object": obj}})


async def test_duplicate_and_out_of_order_dispute_events_apply_once(mcp, app, db) -> None:
    paid = await _charge(mcp, "pro_monthly", "pm_card_visa")
    closed = _dispute_event("charge.dispute.closed", paid, "lost", event_id="evt_d2")
    created = _dispute_event("charge.dispute.created", paid, "needs_response", event_id="evt_d1")
    outcomes = [(await post(app, body, signed(body))).json()["outcome"] for body in (closed, closed, created)]
    assert outcomes == ["applied", "duplicate", "ignored"]
    row = await db.fetchrow("SELECT status, closed_at, reason FROM disputes")
    assert row["status"] == "lost" and row["closed_at"] is not None and row["reason"] == "product_not_received"
    assert await db.fetchval("SELECT revoked_at IS NOT NULL FROM entitlements") is True
    assert await db.fetchval("SELECT count(*) FROM dispute_audit") == 1
    note = await db.fetchval("SELECT note FROM webhook_events WHERE event_id = 'evt_d1'")
    assert "out of order" in note


async def test_with_the_keep_policy_a_dispute_changes_no_access_until_it_is_lost(mcp, app, db, database_url) -> None:
    paid = await _charge(mcp, "pro_monthly", "pm_card_visa")
    async with open_services(quiet_settings(database_url, dispute_policy="keep")) as keeping:
        for event_type, status, event_id in [
            ("charge.dispute.created", "needs_response", "evt_k1"),
            ("charge.dispute.updated", "under_review", "evt_k2"),
        ]:
            body = _dispute_event(event_type, paid, status, event_id=event_id)
            assert (await inbox.ingest(keeping, event_from_payload(json.loads(body)))).outcome == "applied"
        assert (await _entitlement(mcp))["allowed"] is True
        lost = _dispute_event("charge.dispute.closed", paid, "lost", event_id="evt_k3")
        assert (await inbox.ingest(keeping, event_from_payload(json.loads(lost)))).outcome == "applied"
    assert (await _entitlement(mcp))["allowed"] is False
    assert await db.fetchval("SELECT policy FROM disputes") == "keep"


@pytest.mark.parametrize("status", ["won", "lost", "warning_closed", "prevented"])
async def test_closed_disputes_never_move(status) -> None:
    assert dispute_machine.ALLOWED[status] == frozenset()


async def test_the_database_allows_exactly_the_machines_moves(db) -> None:
    rows = await db.fetch("SELECT from_status, to_status FROM dispute_status_moves")
    listed = {(row["from_status"], row["to_status"]) for row in rows}
    machine = {(source, target) for source, targets in dispute_machine.ALLOWED.items() for target in targets}
    assert listed == machine


async def test_the_console_shows_a_payments_disputes_and_receipt(mcp, app, db) -> None:
    paid = await _charge(mcp, "pro_monthly", "pm_card_createDispute")
    opened = await _dispute(db, paid["payment_id"])
    password = await new_operator(app.services, "fin", "viewer")
    async with console_client(app, "fin", password) as console:
        page = await console.get(f"/console/payments/{paid['payment_id']}")
    text = visible_text(page.text)
    assert page.status_code == 200
    assert f"{opened['id']}" in text and "needs_response" in text and "access paused" in text and "fraudulent" in text
    assert "Receipt #1" in text and "/receipts/" in page.text
    support = await new_operator(app.services, "sup", "support")
    async with console_client(app, "sup", support) as console:  # may refund, but not this payment
        page = await console.get(f"/console/payments/{paid['payment_id']}")
    text = visible_text(page.text)
    assert f"No refund: the customer's bank has taken this payment back (dispute {opened['id']}" in text
    assert "Refund…" not in text and "Answer the dispute with evidence instead" in text
    async with console_client(app, "fin", OWN_PASSWORD, choose=None) as console:
        page = await console.get("/console/customer?tenant=default&id=cus_dis")
    text = visible_text(page.text)
    assert page.status_code == 200 and "Disputes" in text and opened["id"] in text and "access paused" in text


async def test_money_withdrawn_before_the_dispute_is_announced_is_still_noted(mcp, app, db) -> None:
    paid = await _charge(mcp, "pro_monthly", "pm_card_visa")
    withdrawn = _dispute_event("charge.dispute.funds_withdrawn", paid, "needs_response", event_id="evt_w1")
    created = _dispute_event("charge.dispute.created", paid, "needs_response", event_id="evt_w2")
    outcomes = [(await post(app, body, signed(body))).json()["outcome"] for body in (withdrawn, created)]
    assert outcomes[0] == "applied"
    row = await db.fetchrow("SELECT status, funds_withdrawn_at FROM disputes")
    assert row["status"] == "needs_response" and row["funds_withdrawn_at"] is not None
    assert (await _entitlement(mcp))["reason"] == "disputed"


async def test_a_dispute_heard_of_before_the_payments_success_suspends_what_it_then_grants(mcp, app, db) -> None:
    waiting = await _charge(mcp, "pro_monthly", "pm_card_authenticationRequired")
    assert waiting["status"] == "requires_action"
    opened = _dispute_event("charge.dispute.created", waiting, "needs_response", event_id="evt_e1")
    assert (await post(app, opened, signed(opened))).json()["outcome"] == "applied"
    succeeded = intent_event("payment_intent.succeeded", waiting, event_id="evt_e2")
    assert (await post(app, succeeded, signed(succeeded))).json()["outcome"] == "applied"
    assert await db.fetchval("SELECT suspended_at IS NOT NULL FROM entitlements") is True
    answer = await _entitlement(mcp)
    assert answer["allowed"] is False and answer["reason"] == "disputed"


async def test_a_dispute_lost_before_the_payments_success_leaves_nothing_granted(mcp, app, db) -> None:
    waiting = await _charge(mcp, "pro_monthly", "pm_card_authenticationRequired")
    lost = _dispute_event("charge.dispute.closed", waiting, "lost", event_id="evt_l1")
    assert (await post(app, lost, signed(lost))).json()["outcome"] == "applied"
    succeeded = intent_event("payment_intent.succeeded", waiting, event_id="evt_l2")
    assert (await post(app, succeeded, signed(succeeded))).json()["outcome"] == "applied"
    assert await db.fetchval("SELECT revoked_at IS NOT NULL FROM entitlements") is True
    assert (await _entitlement(mcp))["allowed"] is False


async def test_a_late_copy_of_an_older_event_never_moves_a_dispute_back(mcp, app, db) -> None:
    paid = await _charge(mcp, "pro_monthly", "pm_card_visa")
    for event_type, status, event_id in [
        ("charge.dispute.created", "needs_response", "evt_b1"),
        ("charge.dispute.updated", "under_review", "evt_b2"),
        ("charge.dispute.updated", "needs_response", "evt_b3"),  # sent before evt_b2, delivered after it
    ]:
        body = _dispute_event(event_type, paid, status, event_id=event_id)
        await post(app, body, signed(body))
    assert await db.fetchval("SELECT status FROM disputes") == "under_review"
    assert "out of order" in await db.fetchval("SELECT note FROM webhook_events WHERE event_id = 'evt_b3'")


async def test_buying_again_while_disputed_gives_access_from_now(mcp, app, db) -> None:
    await _charge(mcp, "pro_monthly", "pm_card_createDispute")
    await eventually(lambda: db.fetchval("SELECT suspended_at IS NOT NULL FROM entitlements"))
    assert (await _entitlement(mcp))["reason"] == "disputed"
    again = await _charge(mcp, "pro_monthly", "pm_card_visa", key="d2")
    assert again["status"] == "succeeded"
    starts = await db.fetchval("SELECT starts_at - now() FROM entitlements WHERE payment_id = $1", again["payment_id"])
    assert abs(starts.total_seconds()) < 60
    assert (await _entitlement(mcp))["allowed"] is True
