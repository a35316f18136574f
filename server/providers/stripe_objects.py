"""Stripe's objects and events in paywarden's words: payment intents and Checkout Sessions as payments,
refunds, saved cards, setups (a Checkout Session in setup mode, its setup intent)."""

from __future__ import annotations

import json
from typing import Any

from server.errors import MalformedEvent
from server.money import EXPONENTS
from server.providers.base import (
    BalanceMovement,
    ProviderCard,
    ProviderDispute,
    ProviderPayment,
    ProviderRefund,
    ProviderSetup,
    WebhookEvent,
)
from server.providers.stripe_amounts import from_stripe
from server.providers.stripe_billing import what_it_moves as billing_what_it_moves

INTENT_EVENTS = {
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "failed",
    "payment_intent.processing": "processing",
    "payment_intent.requires_action": "requires_action",
    "payment_intent.canceled": "canceled",
}
PAGE_EVENTS = {
    "checkout.session.completed": None,  # paid, or (a delayed method) still processing: the session says
    "checkout.session.async_payment_succeeded": "succeeded",
    "checkout.session.async_payment_failed": "failed",
    "checkout.session.expired": "canceled",
}
SETUP_INTENT_EVENTS = {"setup_intent.succeeded": "succeeded", "setup_intent.canceled": "canceled"}
REFUND_EVENTS = frozenset({"refund.created", "refund.updated", "refund.failed"})
REFUND_STATUS = {
    "succeeded": "succeeded",
    "pending": "pending",
    "requires_action": "pending",
    "failed": "failed",
    "canceled": "canceled",
}
DISPUTE_EVENTS = frozenset({
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
})  # fmt: skip
PAGE_EXPIRED = "the payment page expired before the person paid"
MAX_NESTING = 64
"""Stripe's objects are a few levels deep; far deeper bodies are refused rather than walked."""
NEEDS_THE_PERSON = "authentication_required"
"""The code of an off-session charge declined because the card needs its holder: not a failure, a person's turn."""


def payment_from_intent(intent: dict[str, Any]) -> ProviderPayment:
    status, reason = _intent_status(intent)
    currency, amount = _money(intent.get("currency"), intent.get("amount"))
    return ProviderPayment(
        provider_payment_id=intent.get("id"),
        status=status,
        amount_minor=amount,
        currency=currency,
        payment_id=(intent.get("metadata") or {}).get("payment_id"),
        next_action_url=redirect_url(intent) if status == "requires_action" else None,
        failure_reason=reason,
    )


def redirect_url(intent: dict[str, Any]) -> str | None:
    return ((intent.get("next_action") or {}).get("redirect_to_url") or {}).get("url")


def _intent_status(intent: dict[str, Any]) -> tuple[str, str | None]:
    status = intent.get("status")
    error = intent.get("last_payment_error") or {}
    if status == "requires_payment_method":
        if not error or error.get("code") == NEEDS_THE_PERSON:
            return "requires_action", None
        return "failed", error.get("message") or "payment declined"
    if status == "canceled":
        return "canceled", intent.get("cancellation_reason") or "canceled at the provider"
    return {
        "succeeded": ("succeeded", None),
        "processing": ("processing", None),
        "requires_capture": ("processing", None),
        "requires_action": ("requires_action", None),
        "requires_confirmation": ("pending", None),
    }.get(status or "", ("pending", None))


def payment_from_session(session: dict[str, Any]) -> ProviderPayment:
    """A payment-mode Checkout Session: open (the person may still pay), complete (paid, or a delayed
    method still processing), or expired."""
    status = {"open": "requires_action", "expired": "canceled"}.get(str(session.get("status")))
    if status is None:
        status = "processing" if session.get("payment_status") == "unpaid" else "succeeded"
    currency, amount = _money(session.get("currency"), session.get("amount_total"))
    return ProviderPayment(
        provider_payment_id=_id(session.get("payment_intent")),
        status=status,
        amount_minor=amount,
        currency=currency,
        payment_id=(session.get("metadata") or {}).get("payment_id"),
        next_action_url=session.get("url") if status == "requires_action" else None,
        failure_reason=PAGE_EXPIRED if status == "canceled" else None,
        checkout_id=session.get("id"),
        from_payment_page=True,
    )


def refund_from_object(refund: dict[str, Any]) -> ProviderRefund:
    currency, amount = _money(refund.get("currency"), refund.get("amount"))
    return ProviderRefund(
        provider_refund_id=refund.get("id"),
        status=REFUND_STATUS.get(str(refund.get("status")), "pending"),
        amount_minor=amount,
        currency=currency,
        refund_id=(refund.get("metadata") or {}).get("refund_id"),
        provider_payment_id=_id(refund.get("payment_intent")),
        failure_reason=refund.get("failure_reason"),
    )


def dispute_from_object(dispute: dict[str, Any]) -> ProviderDispute:
    currency, amount = _money(dispute.get("currency"), dispute.get("amount"))
    due = (dispute.get("evidence_details") or {}).get("due_by")
    return ProviderDispute(
        provider_dispute_id=str(dispute["id"]),
        status=str(dispute.get("status") or "needs_response"),
        amount_minor=amount,
        currency=currency,
        reason=str(dispute.get("reason") or "general"),
        provider_payment_id=_id(dispute.get("payment_intent")),
        evidence_due_by=due if isinstance(due, int) else None,
    )


def balance_movement(txn: dict[str, Any]) -> BalanceMovement:
    """A balance transaction, its source expanded (`expand[]=data.source`) or only named."""
    source = txn.get("source")
    found = source if isinstance(source, dict) else {"id": source, "object": None}
    kind = _movement_kind(str(txn.get("type") or ""), str(txn.get("reporting_category") or ""), found.get("object"))
    code = str(txn.get("currency") or "").upper()

    def amount(value: Any) -> int:
        return from_stripe(int(value or 0), code) if code in EXPONENTS else int(value or 0)

    intent = _id(found.get("payment_intent"))
    settled, fee = amount(txn.get("amount")), amount(txn.get("fee"))
    source_code = str(found.get("currency") or code).upper()
    source_amount = None
    if source_code != code and isinstance(found.get("amount"), int) and source_code in EXPONENTS:
        source_amount = from_stripe(found["amount"], source_code) * (-1 if settled < 0 else 1)
    return BalanceMovement(
        provider_txn_id=str(txn["id"]),
        kind=kind,
        amount_minor=settled,
        fee_minor=fee,
        net_minor=settled - fee,  # converted separately, Stripe's net could differ by a rounding for shifted currencies
        currency=code,
        source_amount_minor=source_amount,
        source_currency=source_code if source_amount is not None else None,
        created=int(txn.get("created") or 0),
        source_id=_id(source),
        provider_payment_id=intent,
        provider_refund_id=found.get("id") if kind == "refund" else None,
        provider_dispute_id=found.get("id") if kind.startswith("dispute") else None,
        payment_id=(found.get("metadata") or {}).get("payment_id") if kind == "charge" else None,
    )


def _movement_kind(txn_type: str, category: str, source_object: Any) -> str:
    if source_object == "dispute" or category in ("dispute", "dispute_reversal"):
        reinstated = category == "dispute_reversal" or txn_type == "dispute_reinstatement"
        return "dispute_reversal" if reinstated else "dispute"
    if txn_type in ("charge", "payment"):
        return "charge"
    if txn_type in ("refund", "payment_refund"):
        return "refund"
    return "other"


def card_from_method(method: dict[str, Any]) -> ProviderCard | None:
    """A card payment method's look (None for anything that is not a card)."""
    card = method.get("card") or {}
    if method.get("type") != "card" or not card.get("last4"):
        return None
    return ProviderCard(
        provider_payment_method_id=method["id"],
        brand=str(card.get("brand") or "card"),
        last4=str(card["last4"]),
        exp_month=int(card.get("exp_month") or 0),
        exp_year=int(card.get("exp_year") or 0),
        provider_customer_id=_id(method.get("customer")),
    )


def setup_from_session(session: dict[str, Any]) -> ProviderSetup:
    status = {"open": "requires_action", "complete": "succeeded", "expired": "canceled"}.get(
        str(session.get("status")), "requires_action"
    )
    return ProviderSetup(
        provider_setup_id=session.get("id"),
        status=status,
        setup_id=(session.get("metadata") or {}).get("setup_id"),
        setup_url=session.get("url") if status == "requires_action" else None,
        setup_intent_id=_id(session.get("setup_intent")),
        failure_reason="the page expired before a card was saved" if status == "canceled" else None,
    )


def setup_from_intent(setup_intent: dict[str, Any], status: str) -> ProviderSetup:
    method = setup_intent.get("payment_method")
    return ProviderSetup(
        provider_setup_id=None,
        status=status,
        setup_id=(setup_intent.get("metadata") or {}).get("setup_id"),
        setup_intent_id=setup_intent.get("id"),
        payment_method_id=_id(method),
        card=card_from_method(method) if isinstance(method, dict) else None,
        failure_reason="the card was not saved" if status == "canceled" else None,
    )


def event_from_payload(payload: Any, raw: str | None = None) -> WebhookEvent:
    """The event in paywarden's words; MalformedEvent (with the body, to keep it as rejected) when it is not
    a Stripe event paywarden can store and handle."""
    try:
        _require_storable(payload)
        return _event_from_payload(payload, raw)
    except MalformedEvent:
        raise
    except (TypeError, AttributeError, ValueError, KeyError) as error:
        problem = f"The event's fields are not of the types Stripe sends ({type(error).__name__})."
        raise MalformedEvent(problem, raw if raw is not None else as_text(payload)) from None


def _event_from_payload(payload: Any, raw: str | None) -> WebhookEvent:
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("id"), str)
        or not isinstance(payload.get("type"), str)
    ):
        raise MalformedEvent("The body is not a Stripe event (it needs string 'id' and 'type').", raw)
    event_id, event_type = payload["id"], payload["type"]
    if len(event_id) > 255 or len(event_type) > 255:
        raise MalformedEvent("The event id or type is too long.", raw)
    obj = (payload.get("data") or {}).get("object")
    if not isinstance(obj, dict):
        return WebhookEvent(event_id=event_id, event_type=event_type, payload=payload)
    return WebhookEvent(event_id=event_id, event_type=event_type, payload=payload, **_what_it_moves(event_type, obj))


def _what_it_moves(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    if event_type in INTENT_EVENTS:
        return {"payment": _intent_event(event_type, obj)}
    if event_type in REFUND_EVENTS:
        return {"refund": refund_from_object(obj)}
    if event_type in PAGE_EVENTS:
        if obj.get("mode") == "setup":
            return {"setup": setup_from_session(obj)}
        if obj.get("mode") == "payment":
            return {"payment": _page_event(event_type, obj)}
    if event_type in SETUP_INTENT_EVENTS:
        return {"setup": setup_from_intent(obj, SETUP_INTENT_EVENTS[event_type])}
    if event_type in DISPUTE_EVENTS and isinstance(obj.get("id"), str):
        return {"dispute": dispute_from_object(obj)}
    if event_type == "payment_method.detached" and isinstance(obj.get("id"), str):
        return {"detached_payment_method": obj["id"]}
    return billing_what_it_moves(event_type, obj)


def _intent_event(event_type: str, intent: dict[str, Any]) -> ProviderPayment:
    mapped = payment_from_intent(intent)
    status = INTENT_EVENTS[event_type]
    error = intent.get("last_payment_error") or {}
    if status == "failed" and error.get("code") == NEEDS_THE_PERSON:
        status = "requires_action"  # declined off-session for want of the person: paywarden asks them
    reason = mapped.failure_reason if status in ("failed", "canceled") else None
    return ProviderPayment(
        provider_payment_id=mapped.provider_payment_id,
        status=status,
        amount_minor=mapped.amount_minor,
        currency=mapped.currency,
        payment_id=mapped.payment_id,
        next_action_url=redirect_url(intent) if status == "requires_action" else None,
        failure_reason=reason or ("payment declined" if status == "failed" else None),
    )


def _page_event(event_type: str, session: dict[str, Any]) -> ProviderPayment:
    mapped = payment_from_session(session)
    status = PAGE_EVENTS[event_type] or mapped.status
    reason = {"failed": "the payment failed after checkout", "canceled": PAGE_EXPIRED}.get(status)
    return ProviderPayment(
        provider_payment_id=mapped.provider_payment_id,
        status=status,
        amount_minor=mapped.amount_minor,
        currency=mapped.currency,
        payment_id=mapped.payment_id,
        failure_reason=reason,
        checkout_id=mapped.checkout_id,
        from_payment_page=True,
    )


def _require_storable(payload: Any) -> None:
    """Refuse what PostgreSQL's jsonb cannot hold (NUL characters, lone surrogates) and nesting past reason."""
    stack = [(payload, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_NESTING:
            raise MalformedEvent(f"The event is nested more than {MAX_NESTING} levels deep.")
        if isinstance(value, str):
            _require_storable_text(value)
        elif isinstance(value, dict):
            stack += [(key, depth + 1) for key in value] + [(item, depth + 1) for item in value.values()]
        elif isinstance(value, list):
            stack += [(item, depth + 1) for item in value]


def _require_storable_text(text: str) -> None:
    if "\x00" in text:
        raise MalformedEvent("The event contains a NUL character (\\u0000), which no Stripe event does.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedEvent("The event contains a lone surrogate (an invalid \\ud8xx escape).") from None


def as_text(payload: Any) -> str:
    return json.dumps(payload, default=str, ensure_ascii=False)[:65536]


def _money(currency: Any, amount: Any) -> tuple[str | None, int | None]:
    code = str(currency or "").upper() or None
    known = isinstance(amount, int) and code in EXPONENTS
    return code, from_stripe(amount, code) if known else None


def _id(value: Any) -> str | None:
    """An expandable field: the id, whether Stripe sent the id or the object."""
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) else None
