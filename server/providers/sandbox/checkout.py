"""How the sandbox's Checkout Sessions behave: a hosted page where the person pays (mode `payment`) or
saves a card (mode `setup`), completing or expiring the session as Stripe's Checkout does.

In payment mode the payment intent is created when the person first pays (Stripe creates it lazily
too); a declined card leaves the session open for another try. In setup mode the setup intent exists
from the start and succeeds when a card is saved, attached to the session's customer.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from server.providers.sandbox import cards, intents
from server.providers.sandbox.cards import ChosenCard
from server.providers.sandbox.objects import (
    checkout_session_template,
    fill,
    payment_intent_template,
    setup_intent_template,
)
from server.providers.sandbox.requests import SandboxError, items, metadata, text

MIN_LIFETIME_SECONDS = 30 * 60
MAX_LIFETIME_SECONDS = 24 * 60 * 60


@dataclass
class Change:
    """Objects an operation made or changed (to store), and the events to emit, in order."""

    objects: list[dict[str, Any]] = field(default_factory=list)
    private: dict[str, dict[str, Any]] = field(default_factory=dict)
    """What only the sandbox keeps of some of those objects, by id (the test card a saved card stands for)."""
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    problem: str | None = None
    """What to tell the person on the page (a declined card)."""


def new_session(params: dict[str, Any], hosted_page_base: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The session and what only the sandbox keeps of it (its line items, the intents' parameters)."""
    mode = params.get("mode")
    if mode not in ("payment", "setup"):
        raise SandboxError(400, "The sandbox supports Checkout in mode payment or setup.", param="mode")
    now = int(time.time())
    session_id = "cs_test_" + secrets.token_hex(16)
    session = fill(
        checkout_session_template(session_id),
        mode=mode,
        status="open",
        created=now,
        expires_at=_expires_at(params.get("expires_at"), now),
        url=f"{hosted_page_base}/checkout/{session_id}",
        customer=text(params, "customer", 255),
        client_reference_id=text(params, "client_reference_id", 200),
        success_url=text(params, "success_url", 5000),
        cancel_url=text(params, "cancel_url", 5000),
        metadata=metadata(params.get("metadata")),
        allowed_payment_method_types=_card_only(params.get("allowed_payment_method_types")),
        ui_mode="hosted_page",
        client_secret=None,
    )
    private = {"intent_data": _intent_data(params, mode)}
    if mode == "payment":
        lines = _line_items(params.get("line_items"))
        currencies = {line["currency"] for line in lines}
        if len(currencies) != 1:
            raise SandboxError(400, "All line items must use the same currency.", param="line_items")
        total = sum(line["unit_amount"] * line["quantity"] for line in lines)
        session.update(currency=currencies.pop(), amount_subtotal=total, amount_total=total, payment_status="unpaid")
        private["line_items"] = lines
    else:
        session.update(currency=text(params, "currency", 3), payment_status="no_payment_required")
    return session, private


def new_setup_intent(session: dict[str, Any], private: dict[str, Any]) -> dict[str, Any]:
    """A setup-mode session's setup intent, created with it."""
    setup_id = "seti_" + secrets.token_hex(12)
    data = private["intent_data"]
    return fill(
        setup_intent_template(setup_id),
        created=session["created"],
        customer=session["customer"],
        client_secret=f"{setup_id}_secret_{secrets.token_hex(8)}",
        description=data.get("description"),
        metadata=data.get("metadata", {}),
    )


def pay(
    session: dict[str, Any], private: dict[str, Any], intent: dict[str, Any] | None, card: ChosenCard, base: str
) -> Change:
    """The person pays with a card: the intent (created now if this is the first try) is confirmed; on
    success the session completes, on a decline it stays open."""
    _require_open(session, "payment")
    change = Change()
    if intent is None:
        intent = _intent_for(session, private)
        change.events.append(("payment_intent.created", intent))
        session = {**session, "payment_intent": intent["id"]}
    outcome = intents.confirm(intent, card, base, off_session=False, return_url=None)
    change.objects += [outcome.intent, session]
    change.events += [(event_type, outcome.intent) for event_type in outcome.event_types]
    if outcome.intent["status"] == "succeeded":
        completed = {**session, "status": "complete", "payment_status": "paid"}
        change.objects[-1] = completed
        change.events.append(("checkout.session.completed", completed))
    elif outcome.error is not None:
        change.problem = f"{outcome.error.body['error']['message']} Try another card."
    return change


def save_card(session: dict[str, Any], setup_intent: dict[str, Any], test_card: str) -> Change:
    """The person saves a card: a payment method of its own, attached to the session's customer; the setup
    intent succeeds and the session completes."""
    _require_open(session, "setup")
    if test_card not in cards.SAVE_ON_HOSTED_PAGE:
        raise SandboxError(400, "Choose one of the cards offered on this page.")
    method = cards.new_payment_method(test_card, session.get("customer"))
    succeeded = {**setup_intent, "status": "succeeded", "payment_method": method["id"]}
    completed = {**session, "status": "complete"}
    change = Change(objects=[method, succeeded, completed], private={method["id"]: {"test_card": test_card}})
    if method["customer"]:
        change.events.append(("payment_method.attached", method))
    change.events += [("setup_intent.succeeded", succeeded), ("checkout.session.completed", completed)]
    return change


def expire(session: dict[str, Any], intent: dict[str, Any] | None, setup_intent: dict[str, Any] | None) -> Change:
    """Close an open session (its time ran out, or the merchant expired it): nobody can pay it any more."""
    if session["status"] != "open":
        raise SandboxError(
            400,
            f'Only Checkout Sessions with a status in ["open"] can be expired (this one is {session["status"]}).',
            code="checkout_session_not_open",
        )
    change = Change()
    if intent is not None and intent["status"] not in ("succeeded", "canceled"):
        canceled = intents.cancel(intent, "abandoned").intent
        change.objects.append(canceled)
        change.events.append(("payment_intent.canceled", canceled))
    if setup_intent is not None and setup_intent["status"] != "succeeded":
        closed = {**setup_intent, "status": "canceled", "cancellation_reason": "abandoned"}
        change.objects.append(closed)
        change.events.append(("setup_intent.canceled", closed))
    expired = {**session, "status": "expired", "url": None}
    change.objects.append(expired)
    change.events.append(("checkout.session.expired", expired))
    return change


def _intent_for(session: dict[str, Any], private: dict[str, Any]) -> dict[str, Any]:
    data = private["intent_data"]
    intent_id = "pi_" + secrets.token_hex(12)
    return fill(
        payment_intent_template(intent_id),
        amount=session["amount_total"],
        currency=session["currency"],
        client_secret=f"{intent_id}_secret_{secrets.token_hex(8)}",
        created=int(time.time()),
        customer=session.get("customer"),
        description=data.get("description"),
        metadata=data.get("metadata", {}),
        setup_future_usage=data.get("setup_future_usage"),
    )


def _require_open(session: dict[str, Any], mode: str) -> None:
    if session["mode"] != mode:
        raise SandboxError(400, f"This checkout is in {session['mode']} mode.")
    if session["status"] != "open":
        raise SandboxError(400, f"This checkout is {session['status']}; there is nothing to do on this page.")


def _expires_at(raw: Any, now: int) -> int:
    if raw is None:
        return now + MAX_LIFETIME_SECONDS
    if not isinstance(raw, str) or not raw.isdigit():
        raise SandboxError(400, "Invalid integer: expires_at", code="parameter_invalid_integer", param="expires_at")
    value = int(raw)
    if not now + MIN_LIFETIME_SECONDS <= value <= now + MAX_LIFETIME_SECONDS:
        raise SandboxError(
            400,
            "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.",
            code="parameter_invalid",
            param="expires_at",
        )
    return value


def _card_only(raw: Any) -> list[str] | None:
    listed = items(raw)
    if any(kind != "card" for kind in listed):
        raise SandboxError(400, "The sandbox takes cards only.", param="allowed_payment_method_types")
    return listed or None


def _intent_data(params: dict[str, Any], mode: str) -> dict[str, Any]:
    name = "payment_intent_data" if mode == "payment" else "setup_intent_data"
    raw = params.get(name) or {}
    if not isinstance(raw, dict):
        raise SandboxError(400, f"Invalid {name}.", param=name)
    return {
        "metadata": metadata(raw.get("metadata")),
        "description": text(raw, "description", 1000),
        "setup_future_usage": text(raw, "setup_future_usage", 20),
    }


def _line_items(raw: Any) -> list[dict[str, Any]]:
    listed = items(raw)
    if not listed:
        raise SandboxError(400, "line_items is required in payment mode.", code="parameter_missing", param="line_items")
    return [_line_item(line) for line in listed]


def _line_item(line: Any) -> dict[str, Any]:
    price = line.get("price_data") if isinstance(line, dict) else None
    product = price.get("product_data") if isinstance(price, dict) else None
    if not isinstance(product, dict) or not product.get("name"):
        raise SandboxError(
            400,
            "The sandbox needs line_items[][price_data] with currency, unit_amount and product_data[name].",
            param="line_items",
        )
    quantity = line.get("quantity", "1")
    if not isinstance(quantity, str) or not quantity.isdigit() or int(quantity) < 1:
        raise SandboxError(400, "Invalid quantity: a positive integer.", param="line_items[quantity]")
    return {
        "name": str(product["name"])[:250],
        "currency": intents.currency(price.get("currency")),
        "unit_amount": intents.amount(price.get("unit_amount")),
        "quantity": int(quantity),
    }
