"""The Stripe adapter: PaymentIntents through the official SDK, Stripe's own signature checks.

The sandbox provider speaks the same HTTP API, so this adapter serves both; only the base
address and the keys differ.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from typing import Any

import stripe

from server.config import PROVIDER_ATTEMPTS
from server.errors import MalformedEvent, ProviderError, ProviderUnavailable, WebhookRejected
from server.money import EXPONENTS
from server.providers.base import (
    ChargeRequest,
    EventPage,
    ProviderPayment,
    ProviderRefund,
    RefundRequest,
    UnreadableEvent,
    WebhookEvent,
)
from server.providers.stripe_amounts import check_chargeable, from_stripe, to_stripe

MAX_NESTING = 64
"""Stripe's objects are a few levels deep; far deeper bodies are refused rather than walked."""
EVENT_STATUS = {
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "failed",
    "payment_intent.processing": "processing",
    "payment_intent.requires_action": "requires_action",
    "payment_intent.canceled": "canceled",
}


REFUND_EVENTS = frozenset({"refund.created", "refund.updated", "refund.failed"})
REFUND_STATUS = {
    "succeeded": "succeeded",
    "pending": "pending",
    "requires_action": "pending",
    "failed": "failed",
    "canceled": "canceled",
}


class StripeProvider:
    def __init__(
        self,
        *,
        name: str,
        api_key: str,
        webhook_secret: str | None,
        return_url: str | None,
        api_base: str | None = None,
        timeout_seconds: float = 20.0,
        webhook_tolerance_seconds: int = 300,
        unreachable_hint: str = "",
    ) -> None:
        self.name = name
        self._unreachable_hint = unreachable_hint
        self._webhook_secret = webhook_secret
        self._return_url = return_url
        self._tolerance = webhook_tolerance_seconds
        self._http = stripe.HTTPXClient(timeout=timeout_seconds)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=self._http,
            max_network_retries=PROVIDER_ATTEMPTS - 1,
        )

    async def create_payment(self, request: ChargeRequest) -> ProviderPayment:
        options: dict[str, Any] = {"idempotency_key": request.payment_id}
        try:
            intent = await self._client.v1.payment_intents.create_async(
                _intent_params(request, self._return_url), options
            )
        except stripe.CardError as error:
            return _declined(error)
        except stripe.InvalidRequestError as error:
            if error.http_status in (400, 402, 404):
                return ProviderPayment(None, "failed", failure_reason=_safe_message(error))
            raise self._unavailable(error) from error
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        return payment_from_intent(intent.to_dict())

    async def create_refund(self, request: RefundRequest) -> ProviderRefund:
        params: dict[str, Any] = {
            "payment_intent": request.provider_payment_id,
            "amount": to_stripe(request.amount_minor, request.currency),
            "metadata": {"refund_id": request.refund_id, "payment_id": request.payment_id},
        }
        if request.reason:
            params["metadata"]["reason"] = request.reason[:500]
        try:
            refund = await self._client.v1.refunds.create_async(params, {"idempotency_key": request.refund_id})
        except stripe.InvalidRequestError as error:
            if error.http_status in (400, 402, 404):
                return ProviderRefund(None, "failed", failure_reason=_safe_message(error))
            raise self._unavailable(error) from error
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        return refund_from_object(refund.to_dict())

    async def retrieve_refund(self, provider_refund_id: str) -> ProviderRefund:
        try:
            refund = await self._client.v1.refunds.retrieve_async(provider_refund_id)
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        return refund_from_object(refund.to_dict())

    def check_chargeable(self, amount_minor: int, currency: str) -> None:
        check_chargeable(amount_minor, currency)

    async def cancel_payment(self, provider_payment_id: str) -> None:
        """Close the intent so nobody can pay it later (after we recorded it as failed)."""
        try:
            await self._client.v1.payment_intents.cancel_async(provider_payment_id)
        except stripe.InvalidRequestError as error:
            if error.code != "payment_intent_unexpected_state":  # already canceled or settled: fine
                raise self._unavailable(error) from error
        except stripe.StripeError as error:
            raise self._unavailable(error) from error

    async def retrieve_payment(self, provider_payment_id: str) -> ProviderPayment:
        try:
            intent = await self._client.v1.payment_intents.retrieve_async(provider_payment_id)
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        return payment_from_intent(intent.to_dict())

    async def events_after(self, event_id: str | None, *, created_since: int, limit: int) -> EventPage | None:
        try:
            if event_id is not None:
                page = await self._client.v1.events.list_async({"ending_before": event_id, "limit": limit})
                return EventPage(_events_oldest_first(page.data), page.has_more)
            newest_first = await self._events_since(created_since)
        except stripe.InvalidRequestError as error:
            if error.code == "resource_missing":
                return None
            raise self._unavailable(error) from error
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        oldest_first = _events_oldest_first(newest_first)
        return EventPage(oldest_first[:limit], len(oldest_first) > limit)

    async def _events_since(self, created_since: int) -> list[Any]:
        """Stripe lists newest first, so the oldest event since a time is found by reading back to it."""
        params: dict[str, Any] = {"created": {"gte": created_since}, "limit": 100}
        found: list[Any] = []
        while True:
            page = await self._client.v1.events.list_async(params)
            found.extend(page.data)
            if not page.has_more or not page.data:
                return found
            params["starting_after"] = page.data[-1].id

    def verify_webhook(self, payload: bytes, signature_header: str | None, secrets: str | None = None) -> WebhookEvent:
        """Accepts a signature by any of the configured secrets (comma-separated), so a secret can be
        rotated without losing events: add the new one, then remove the old one."""
        accepted = _split_secrets(secrets or self._webhook_secret or "")
        if not accepted:
            raise WebhookRejected("This process does not receive webhooks.")
        if not signature_header:
            raise WebhookRejected("Missing Stripe-Signature header; nothing was stored.")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookRejected("The body is not UTF-8; nothing was stored.") from None
        problems = [self._signature_problem(text, signature_header, secret) for secret in accepted]
        if None not in problems:
            raise WebhookRejected(_most_telling(problems))
        return event_from_payload(_parse_json(text), raw=text)

    def _signature_problem(self, text: str, header: str, secret: str) -> str | None:
        try:
            stripe.WebhookSignature.verify_header(text, header, secret, self._tolerance)
            _reject_future_timestamp(header, self._tolerance)
        except stripe.SignatureVerificationError as error:
            return _signature_problem(str(error), self._tolerance)
        return None

    def _unavailable(self, error: stripe.StripeError) -> ProviderError:
        if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
            return ProviderError(
                "The payment provider refused paywarden's API key; the operator must fix its configuration. "
                "Nothing was charged."
            )
        return ProviderUnavailable(ProviderUnavailable().message + self._unreachable_hint)

    async def close(self) -> None:
        await self._http.close_async()


def _intent_params(request: ChargeRequest, return_url: str | None) -> dict[str, Any]:
    metadata = {"payment_id": request.payment_id, "customer_id": request.customer_id}
    if request.product_id:
        metadata["product_id"] = request.product_id
    params: dict[str, Any] = {
        "amount": to_stripe(request.amount_minor, request.currency),
        "currency": request.currency.lower(),
        "metadata": metadata,
        "payment_method_types": ["card"],
    }
    if request.description:
        params["description"] = request.description
    if request.payment_method:
        params.update(payment_method=request.payment_method, confirm=True)
        if return_url:
            params["return_url"] = return_url
    return params


def payment_from_intent(intent: dict[str, Any]) -> ProviderPayment:
    status, reason = _map_status(intent)
    next_action = intent.get("next_action") or {}
    redirect = next_action.get("redirect_to_url") or {}
    currency = str(intent.get("currency") or "").upper() or None
    amount = intent.get("amount")
    known = isinstance(amount, int) and currency in EXPONENTS
    return ProviderPayment(
        provider_payment_id=intent.get("id"),
        status=status,
        amount_minor=from_stripe(amount, currency) if known else None,
        currency=currency,
        payment_id=(intent.get("metadata") or {}).get("payment_id"),
        next_action_url=redirect.get("url") if status == "requires_action" else None,
        failure_reason=reason,
    )


def _map_status(intent: dict[str, Any]) -> tuple[str, str | None]:
    status = intent.get("status")
    error = intent.get("last_payment_error") or {}
    if status == "requires_payment_method":
        return ("failed", error.get("message") or "payment declined") if error else ("requires_action", None)
    if status == "canceled":
        return "canceled", intent.get("cancellation_reason") or "canceled at the provider"
    return {
        "succeeded": ("succeeded", None),
        "processing": ("processing", None),
        "requires_capture": ("processing", None),
        "requires_action": ("requires_action", None),
        "requires_confirmation": ("pending", None),
    }.get(status or "", ("pending", None))


def refund_from_object(refund: dict[str, Any]) -> ProviderRefund:
    currency = str(refund.get("currency") or "").upper() or None
    amount = refund.get("amount")
    status = refund.get("status")
    return ProviderRefund(
        provider_refund_id=refund.get("id"),
        status=REFUND_STATUS.get(str(status), "pending"),
        amount_minor=from_stripe(amount, currency) if isinstance(amount, int) and currency in EXPONENTS else None,
        currency=currency,
        refund_id=(refund.get("metadata") or {}).get("refund_id"),
        provider_payment_id=refund.get("payment_intent"),
        failure_reason=refund.get("failure_reason"),
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
        raise MalformedEvent(problem, raw if raw is not None else _as_text(payload)) from None


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
    payment = None
    if event_type in EVENT_STATUS and isinstance(obj, dict):
        mapped = payment_from_intent(obj)
        reason = mapped.failure_reason if EVENT_STATUS[event_type] in ("failed", "canceled") else None
        payment = ProviderPayment(
            provider_payment_id=mapped.provider_payment_id,
            status=EVENT_STATUS[event_type],
            amount_minor=mapped.amount_minor,
            currency=mapped.currency,
            payment_id=mapped.payment_id,
            next_action_url=((obj.get("next_action") or {}).get("redirect_to_url") or {}).get("url"),
            failure_reason=reason or ("payment declined" if event_type.endswith("payment_failed") else None),
        )
    refund = refund_from_object(obj) if event_type in REFUND_EVENTS and isinstance(obj, dict) else None
    return WebhookEvent(event_id=event_id, event_type=event_type, payload=payload, payment=payment, refund=refund)


def _split_secrets(secrets: str) -> list[str]:
    return [secret.strip() for secret in secrets.split(",") if secret.strip()]


def _events_oldest_first(newest_first: list[Any]) -> list[WebhookEvent | UnreadableEvent]:
    return [_listed_event(event) for event in reversed(newest_first)]


def _listed_event(event: Any) -> WebhookEvent | UnreadableEvent:
    """One event of the provider's list; one paywarden cannot read does not stop the others."""
    payload = event.to_dict()
    try:
        return event_from_payload(payload)
    except MalformedEvent as error:
        return UnreadableEvent(event_id=str(event.id), raw=error.raw or _as_text(payload), reason=error.message)


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise MalformedEvent("The body is not valid JSON (or is nested too deeply).", text) from None


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


def _as_text(payload: Any) -> str:
    return json.dumps(payload, default=str, ensure_ascii=False)[:65536]


def _declined(error: stripe.CardError) -> ProviderPayment:
    body = error.json_body if isinstance(error.json_body, dict) else {}
    intent = (body.get("error") or {}).get("payment_intent")
    reason = _safe_message(error)
    if isinstance(intent, dict):
        return replace(payment_from_intent(intent), status="failed", next_action_url=None, failure_reason=reason)
    return ProviderPayment(None, "failed", failure_reason=reason)


def _safe_message(error: stripe.StripeError) -> str:
    """The provider's reason, for the agent: without the SDK's advice to write to the provider's support."""
    message = error.user_message or getattr(error, "_message", None) or ""
    sentences = [s for s in _SENTENCE_END.split(message) if s and "support@" not in s and "stripe.com" not in s]
    return (" ".join(sentences) or "the provider refused the payment")[:500]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _reject_future_timestamp(signature_header: str, tolerance_seconds: int) -> None:
    """Stripe's check only looks back in time; a signature dated past the tolerance ahead is as stale."""
    stamps = [part[2:] for part in signature_header.split(",") if part.strip().startswith("t=")]
    if stamps and stamps[0].strip().isdigit() and int(stamps[0]) > time.time() + tolerance_seconds:
        raise stripe.SignatureVerificationError("Timestamp outside the tolerance zone", signature_header)


def _most_telling(problems: list[str | None]) -> str:
    """With several secrets, "stale" or "malformed" says more than "no signature matches"."""
    for marker in ("Stale", "Malformed"):
        for problem in problems:
            if problem and problem.startswith(marker):
                return problem
    return next(problem for problem in problems if problem)


def _signature_problem(stripe_message: str, tolerance_seconds: int) -> str:
    if "tolerance" in stripe_message:
        return (
            f"Stale Stripe-Signature: its timestamp is more than {tolerance_seconds} seconds "
            "from now; nothing was stored."
        )
    if "Unable to extract" in stripe_message:
        return "Malformed Stripe-Signature header; nothing was stored."
    return "Invalid Stripe-Signature: no signature matches this body; nothing was stored."
