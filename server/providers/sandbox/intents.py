"""How the sandbox's payment intents behave: the test card behind the payment method picks the outcome."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from server.money import EXPONENTS, MAX_AMOUNT_MINOR
from server.providers.sandbox import cards
from server.providers.sandbox.cards import ChosenCard
from server.providers.sandbox.objects import (
    charge_template,
    fill,
    payment_error,
    payment_intent_template,
    redirect_next_action,
    refund_template,
)
from server.providers.sandbox.requests import SandboxError, metadata, text

AUTHENTICATION_REQUIRED = "This payment requires the cardholder to authenticate; confirm it while they are present."


@dataclass
class Outcome:
    """The intent after an operation, the events it emits, and the error the API answers with, if any."""

    intent: dict[str, Any]
    event_types: list[str] = field(default_factory=list)
    error: SandboxError | None = None


def new_intent(params: dict[str, Any], card: ChosenCard | None, hosted_page_base: str) -> Outcome:
    """A payment intent; with a payment method and confirm=true, confirmed at once. Without a payment
    method it waits in requires_payment_method, as Stripe's does."""
    intent_id = "pi_" + secrets.token_hex(12)
    intent = fill(
        payment_intent_template(intent_id),
        amount=amount(params.get("amount")),
        currency=currency(params.get("currency")),
        client_secret=f"{intent_id}_secret_{secrets.token_hex(8)}",
        created=int(time.time()),
        customer=text(params, "customer", 255),
        description=text(params, "description", 1000),
        metadata=metadata(params.get("metadata")),
        allowed_payment_method_types=_allowed_types(params.get("allowed_payment_method_types")),
        setup_future_usage=text(params, "setup_future_usage", 20),
    )
    if card is None:
        return Outcome(intent, ["payment_intent.created"])
    intent["payment_method"] = card.payment_method
    if params.get("confirm") not in ("true", True):
        intent["status"] = "requires_confirmation"
        return Outcome(intent, ["payment_intent.created"])
    outcome = confirm(
        intent,
        card,
        hosted_page_base,
        off_session=params.get("off_session") in ("true", True),
        return_url=text(params, "return_url", 2000),
    )
    outcome.event_types.insert(0, "payment_intent.created")
    return outcome


def confirm(
    intent: dict[str, Any], card: ChosenCard, hosted_page_base: str, *, off_session: bool, return_url: str | None
) -> Outcome:
    if intent["status"] in ("succeeded", "canceled", "processing"):
        raise SandboxError(
            400,
            f"This PaymentIntent's status is {intent['status']}, so it cannot be confirmed.",
            code="payment_intent_unexpected_state",
        )
    intent = {**intent, "payment_method": card.payment_method, "last_payment_error": None}
    if card.test_card in cards.SUCCEEDS:
        return Outcome(succeed(intent), ["payment_intent.succeeded"])
    if card.test_card in cards.NEEDS_AUTHENTICATION:
        if off_session:  # nobody is there to authenticate: Stripe declines, the intent may be confirmed again
            return decline(intent, "authentication_required", AUTHENTICATION_REQUIRED, code="authentication_required")
        return Outcome(await_person(intent, hosted_page_base, return_url), ["payment_intent.requires_action"])
    return decline(intent, *cards.DECLINES[card.test_card])


def pay_on_hosted_page(intent: dict[str, Any]) -> Outcome:
    _require_status(intent, "requires_action")
    return Outcome(succeed(intent), ["payment_intent.succeeded"])


def decline_on_hosted_page(intent: dict[str, Any]) -> Outcome:
    _require_status(intent, "requires_action")
    outcome = decline(intent, "generic_decline", "The customer declined the payment on the sandbox page.")
    outcome.error = None
    return outcome


def cancel(intent: dict[str, Any], reason: str | None) -> Outcome:
    if intent["status"] in ("succeeded", "canceled"):
        raise SandboxError(
            400,
            f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}.",
            code="payment_intent_unexpected_state",
        )
    canceled = {
        **intent,
        "status": "canceled",
        "next_action": None,
        "canceled_at": int(time.time()),
        "cancellation_reason": reason or "requested_by_customer",
    }
    return Outcome(canceled, ["payment_intent.canceled"])


def succeed(intent: dict[str, Any]) -> dict[str, Any]:
    return {
        **intent,
        "status": "succeeded",
        "amount_received": intent["amount"],
        "next_action": None,
        "latest_charge": charge_id(intent),
    }


def charge_id(intent: dict[str, Any]) -> str:
    return "ch_" + intent["id"][3:]


def await_person(intent: dict[str, Any], hosted_page_base: str, return_url: str | None) -> dict[str, Any]:
    url = f"{hosted_page_base}/pay/{intent['id']}"
    return {**intent, "status": "requires_action", "next_action": redirect_next_action(url, return_url)}


def decline(intent: dict[str, Any], decline_code: str, message: str, *, code: str = "card_declined") -> Outcome:
    error = payment_error(type="card_error", code=code, message=message, decline_code=decline_code, payment_method=None)
    declined = {**intent, "status": "requires_payment_method", "next_action": None, "last_payment_error": error}
    api_error = SandboxError(
        402,
        message,
        type_="card_error",
        code=code,
        extra={"decline_code": decline_code, "payment_intent": declined},
    )
    return Outcome(declined, ["payment_intent.payment_failed"], api_error)


def _require_status(intent: dict[str, Any], status: str) -> None:
    if intent["status"] != status:
        state = {"succeeded": "has already been paid", "canceled": "was canceled"}.get(
            intent["status"], "is not waiting for payment"
        )
        raise SandboxError(400, f"This payment {state}; there is nothing to do on this page.")


def amount(raw: Any) -> int:
    if not isinstance(raw, str) or not raw.isdigit():
        raise SandboxError(400, "Invalid integer: amount", code="parameter_invalid_integer", param="amount")
    value = int(raw)
    if not 1 <= value <= MAX_AMOUNT_MINOR:
        raise SandboxError(400, "Amount must be between 1 and 99999999.", code="amount_too_large", param="amount")
    return value


def currency(raw: Any) -> str:
    if not isinstance(raw, str) or raw.upper() not in EXPONENTS:
        raise SandboxError(400, f"Invalid currency: {str(raw)[:8]}", code="parameter_invalid", param="currency")
    return raw.lower()


def _allowed_types(raw: Any) -> list[str] | None:
    if raw is None:
        return None
    listed = list(raw.values()) if isinstance(raw, dict) else [raw]
    if any(kind != "card" for kind in listed):
        raise SandboxError(400, "The sandbox takes cards only.", param="allowed_payment_method_types")
    return ["card"]


def new_refund(intent: dict[str, Any], params: dict[str, Any], already_refunded: int) -> tuple[dict[str, Any], list]:
    """A refund of a succeeded intent (all that is left when no amount is given), and its events."""
    if intent["status"] != "succeeded":
        raise SandboxError(
            400,
            f"This PaymentIntent is {intent['status']}; only a succeeded one can be refunded.",
            code="charge_not_refundable",
        )
    left = intent["amount_received"] - already_refunded
    refunded = left if params.get("amount") in (None, "") else amount(params.get("amount"))
    if refunded > left:
        raise SandboxError(
            400,
            f"Refund amount ({refunded}) is greater than unrefunded amount on charge ({left})",
            code="amount_too_large",
            param="amount",
        )
    refund = fill(
        refund_template("re_" + secrets.token_hex(12)),
        amount=refunded,
        currency=intent["currency"],
        payment_intent=intent["id"],
        charge=charge_id(intent),
        customer=intent.get("customer"),
        payment_method=intent.get("payment_method"),
        status="succeeded",
        reason=params.get("reason"),
        metadata=metadata(params.get("metadata")),
        created=int(time.time()),
    )
    return refund, [("refund.created", refund), ("charge.refunded", _charge(intent, already_refunded + refunded))]


def _charge(intent: dict[str, Any], refunded_so_far: int) -> dict[str, Any]:
    return fill(
        charge_template(charge_id(intent)),
        amount=intent["amount"],
        amount_captured=intent["amount_received"],
        amount_refunded=refunded_so_far,
        refunded=refunded_so_far == intent["amount_received"],
        captured=True,
        paid=True,
        status="succeeded",
        currency=intent["currency"],
        customer=intent.get("customer"),
        description=intent.get("description"),
        payment_intent=intent["id"],
        payment_method=intent.get("payment_method"),
        metadata=intent.get("metadata") or {},
        created=intent["created"],
    )
