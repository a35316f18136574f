"""What paywarden needs from a payment provider, in paywarden's own words."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, kw_only=True)
class ChargeRequest:
    payment_id: str
    """Our payment id: the provider-side idempotency key, and in the provider's metadata."""
    customer_id: str
    amount_minor: int
    currency: str
    description: str | None
    payment_method: str | None
    product_id: str | None


@dataclass(frozen=True)
class ProviderPayment:
    """The provider's view of one payment, mapped onto paywarden's statuses."""

    provider_payment_id: str | None
    status: str
    """One of paywarden's payment statuses (created … refunded); the server reads it as a PaymentStatus."""
    amount_minor: int | None = None
    currency: str | None = None
    payment_id: str | None = None
    next_action_url: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class RefundRequest:
    refund_id: str
    """Our refund id: the provider-side idempotency key, and in the provider's metadata."""
    payment_id: str
    provider_payment_id: str
    amount_minor: int
    currency: str
    reason: str | None


@dataclass(frozen=True)
class ProviderRefund:
    provider_refund_id: str | None
    status: str
    """pending, succeeded, failed or canceled."""
    amount_minor: int | None = None
    currency: str | None = None
    refund_id: str | None = None
    provider_payment_id: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True)
class WebhookEvent:
    """A verified provider event. `payment` or `refund` is set for the events that move one."""

    event_id: str
    event_type: str
    payload: dict[str, Any]
    payment: ProviderPayment | None = field(default=None)
    refund: ProviderRefund | None = field(default=None)


@dataclass(frozen=True)
class UnreadableEvent:
    """An event in the provider's list that paywarden cannot handle: kept as rejected, then passed over."""

    event_id: str
    raw: str
    reason: str


@dataclass(frozen=True)
class EventPage:
    events: list[WebhookEvent | UnreadableEvent]
    """Oldest first."""
    has_more: bool


class Provider(Protocol):
    name: str

    async def create_payment(self, request: ChargeRequest) -> ProviderPayment:
        """Create (and, with a payment method, confirm) the payment at the provider.

        Safe to repeat for the same `payment_id`: the provider returns the first result.
        A definite refusal (a declined card, an invalid request) comes back as a `failed`
        ProviderPayment; anything that leaves the outcome unknown raises ProviderUnavailable.
        """
        ...

    async def retrieve_payment(self, provider_payment_id: str) -> ProviderPayment: ...

    async def create_refund(self, request: RefundRequest) -> ProviderRefund:
        """Refund (part of) a paid payment. Safe to repeat for the same `refund_id`.

        A definite refusal comes back as a `failed` ProviderRefund; an unknown outcome raises
        ProviderUnavailable.
        """
        ...

    async def retrieve_refund(self, provider_refund_id: str) -> ProviderRefund: ...

    async def cancel_payment(self, provider_payment_id: str) -> None:
        """Close an unpaid payment at the provider so it can never be paid later."""
        ...

    def check_chargeable(self, amount_minor: int, currency: str) -> None:
        """InvalidRequest when this provider cannot charge exactly this amount in this currency."""
        ...

    async def events_after(self, event_id: str | None, *, created_since: int, limit: int) -> EventPage | None:
        """Up to `limit` of the events the provider sent after `event_id`, oldest first; with no
        `event_id`, the ones sent since `created_since` (Unix seconds). None when the provider no
        longer knows `event_id` (Stripe keeps events for 30 days). Raises ProviderUnavailable."""
        ...

    def verify_webhook(self, payload: bytes, signature_header: str | None, secrets: str | None = None) -> WebhookEvent:
        """The event, if the signature over the raw body is valid and fresh; WebhookRejected otherwise.
        `secrets` (comma-separated) replaces the configured webhook secret, e.g. a tenant's own."""
        ...

    async def close(self) -> None: ...
