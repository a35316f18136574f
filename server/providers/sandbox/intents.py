"""How the sandbox's payment intents behave: Stripe's test payment methods pick the outcome."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from server.money import EXPONENTS, MAX_AMOUNT_MINOR

SUCCEEDS = frozenset({"pm_card_visa", "pm_card_mastercard", "pm_card_amex"})
DECLINES = {
    "pm_card_chargeDeclined": ("generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": ("insufficient_funds", "Your card has insufficient funds."),
}
NEEDS_AUTHENTICATION = frozenset({"pm_card_authenticationRequired", "pm_card_threeDSecure2Required"})
KNOWN_PAYMENT_METHODS = SUCCEEDS | NEEDS_AUTHENTICATION | frozenset(DECLINES)
API_VERSION = "2026-01-28.sandbox"


class SandboxError(Exception):
    """An error in Stripe's shape: `{"error": {"type", "code", "message", "param"}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type_, "message": message, "code": code, "param": param, **(extra or {})}}


@dataclass
class Outcome:
    """The intent after an operation, the events it emits, and the error the API answers with, if any."""

    intent: dict[str, Any]
    event_types: list[str] = field(default_factory=list)
    error: SandboxError | None = None


def new_intent(params: dict[str, Any], hosted_page_base: str) -> Outcome:
    intent_id = "pi_" + secrets.token_hex(12)
    intent = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": _amount(params.get("amount")),
        "amount_received": 0,
        "currency": _currency(params.get("currency")),
        "capture_method": "automatic",
        "client_secret": f"{intent_id}_secret_{secrets.token_hex(8)}",
        "confirmation_method": "automatic",
        "created": int(time.time()),
        "description": _optional_text(params, "description", 1000),
        "last_payment_error": None,
        "livemode": False,
        "metadata": _metadata(params.get("metadata")),
        "next_action": None,
        "payment_method": None,
        "payment_method_types": ["card"],
        "return_url": _optional_text(params, "return_url", 2000),
        "cancellation_reason": None,
        "status": "requires_payment_method",
    }
    payment_method = _payment_method(params.get("payment_method"))
    if payment_method is None:
        return Outcome(_await_person(intent, hosted_page_base), ["payment_intent.created"])
    intent["payment_method"] = payment_method
    if params.get("confirm") not in ("true", True):
        intent["status"] = "requires_confirmation"
        return Outcome(intent, ["payment_intent.created"])
    outcome = confirm(intent, payment_method, hosted_page_base)
    outcome.event_types.insert(0, "payment_intent.created")
    return outcome


def confirm(intent: dict[str, Any], payment_method: str, hosted_page_base: str) -> Outcome:
    if intent["status"] in ("succeeded", "canceled", "processing"):
        raise SandboxError(
            400,
            f"This PaymentIntent's status is {intent['status']}, so it cannot be confirmed.",
            code="payment_intent_unexpected_state",
        )
    intent = {**intent, "payment_method": payment_method, "last_payment_error": None}
    if payment_method in SUCCEEDS:
        return Outcome(_succeed(intent), ["payment_intent.succeeded"])
    if payment_method in NEEDS_AUTHENTICATION:
        return Outcome(_await_person(intent, hosted_page_base), ["payment_intent.requires_action"])
    return _decline(intent, *DECLINES[payment_method])


def pay_on_hosted_page(intent: dict[str, Any]) -> Outcome:
    _require_status(intent, "requires_action")
    return Outcome(_succeed(intent), ["payment_intent.succeeded"])


def decline_on_hosted_page(intent: dict[str, Any]) -> Outcome:
    _require_status(intent, "requires_action")
    outcome = _decline(intent, "generic_decline", "The customer declined the payment on the sandbox page.")
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
        "cancellation_reason": reason or "requested_by_customer",
    }
    return Outcome(canceled, ["payment_intent.canceled"])


def event(event_type: str, intent: dict[str, Any], idempotency_key: str | None) -> dict[str, Any]:
    return {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "api_version": API_VERSION,
        "created": int(time.time()),
        "type": event_type,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": idempotency_key},
        "data": {"object": intent},
    }


def _succeed(intent: dict[str, Any]) -> dict[str, Any]:
    return {**intent, "status": "succeeded", "amount_received": intent["amount"], "next_action": None}


def _await_person(intent: dict[str, Any], hosted_page_base: str) -> dict[str, Any]:
    url = f"{hosted_page_base}/pay/{intent['id']}"
    return {
        **intent,
        "status": "requires_action",
        "next_action": {
            "type": "redirect_to_url",
            "redirect_to_url": {"url": url, "return_url": intent.get("return_url")},
        },
    }


def _decline(intent: dict[str, Any], decline_code: str, message: str) -> Outcome:
    error = {"type": "card_error", "code": "card_declined", "decline_code": decline_code, "message": message}
    declined = {**intent, "status": "requires_payment_method", "next_action": None, "last_payment_error": error}
    api_error = SandboxError(
        402,
        message,
        type_="card_error",
        code="card_declined",
        extra={"decline_code": decline_code, "payment_intent": declined},
    )
    return Outcome(declined, ["payment_intent.payment_failed"], api_error)


def _require_status(intent: dict[str, Any], status: str) -> None:
    if intent["status"] != status:
        state = {"succeeded": "has already been paid", "canceled": "was canceled"}.get(
            intent["status"], "is not waiting for payment"
        )
        raise SandboxError(400, f"This payment {state}; there is nothing to do on this page.")


def _amount(raw: Any) -> int:
    if not isinstance(raw, str) or not raw.isdigit():
        raise SandboxError(400, "Invalid integer: amount", code="parameter_invalid_integer", param="amount")
    amount = int(raw)
    if not 1 <= amount <= MAX_AMOUNT_MINOR:
        raise SandboxError(400, "Amount must be between 1 and 99999999.", code="amount_too_large", param="amount")
    return amount


def _currency(raw: Any) -> str:
    if not isinstance(raw, str) or raw.upper() not in EXPONENTS:
        raise SandboxError(400, f"Invalid currency: {str(raw)[:8]}", code="parameter_invalid", param="currency")
    return raw.lower()


def _payment_method(raw: Any) -> str | None:
    if raw in (None, ""):
        return None
    if raw not in KNOWN_PAYMENT_METHODS:
        raise SandboxError(
            404, f"No such PaymentMethod: '{str(raw)[:64]}'", code="resource_missing", param="payment_method"
        )
    return str(raw)


def _metadata(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > 50 or any(len(str(v)) > 500 for v in raw.values()):
        raise SandboxError(400, "Invalid metadata: at most 50 keys of at most 500 characters.", param="metadata")
    return {str(k): str(v) for k, v in raw.items()}


def _optional_text(params: dict[str, Any], name: str, limit: int) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise SandboxError(400, f"Invalid {name}: a string of at most {limit} characters.", param=name)
    return value


def new_refund(intent: dict[str, Any], params: dict[str, Any], already_refunded: int) -> tuple[dict[str, Any], list]:
    """A refund of a succeeded intent (all that is left when no amount is given), and its events."""
    if intent["status"] != "succeeded":
        raise SandboxError(
            400,
            f"This PaymentIntent is {intent['status']}; only a succeeded one can be refunded.",
            code="charge_not_refundable",
        )
    left = intent["amount_received"] - already_refunded
    amount = left if params.get("amount") in (None, "") else _amount(params.get("amount"))
    if amount > left:
        raise SandboxError(
            400,
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
            code="amount_too_large",
            param="amount",
        )
    refund = {
        "id": "re_" + secrets.token_hex(12),
        "object": "refund",
        "amount": amount,
        "currency": intent["currency"],
        "payment_intent": intent["id"],
        "charge": "ch_" + intent["id"][3:],
        "status": "succeeded",
        "reason": params.get("reason"),
        "metadata": _metadata(params.get("metadata")),
        "created": int(time.time()),
    }
    charge = {
        "id": refund["charge"],
        "object": "charge",
        "amount": intent["amount"],
        "amount_refunded": already_refunded + amount,
        "refunded": already_refunded + amount == intent["amount_received"],
        "currency": intent["currency"],
        "payment_intent": intent["id"],
        "metadata": intent.get("metadata") or {},
    }
    return refund, [("refund.created", refund), ("charge.refunded", charge)]
