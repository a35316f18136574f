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
    """A payment method to charge now; None: the person pays on the provider's payment page (Checkout)."""
    product_id: str | None
    provider_customer_id: str | None = None
    off_session: bool = False
    """Charge the customer's saved `payment_method` while the person is away (it must be theirs)."""
    page_expires_at: int | None = None
    """When the payment page closes (Unix seconds), for a charge without a payment method."""


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
    checkout_id: str | None = None
    """The provider's payment page (a Checkout Session) the person pays on, when there is one."""
    from_payment_page: bool = False
    """The event is about the payment page itself (a Checkout Session), not its payment intent."""


@dataclass(frozen=True, kw_only=True)
class CustomerRequest:
    tenant_id: str
    customer_id: str


@dataclass(frozen=True)
class ProviderCustomer:
    provider_customer_id: str
    default_payment_method: str | None = None


@dataclass(frozen=True)
class ProviderCard:
    """A saved card as the provider describes it (never its number)."""

    provider_payment_method_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    provider_customer_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class SetupRequest:
    setup_id: str
    """Our setup id: the provider-side idempotency key, and in the provider's metadata."""
    tenant_id: str
    customer_id: str
    provider_customer_id: str
    page_expires_at: int
    """When the page for saving a card closes (Unix seconds)."""


@dataclass(frozen=True)
class ProviderSetup:
    """The provider's view of one card being saved: its page, and once saved, the card."""

    provider_setup_id: str | None
    """The provider's page for it (a Checkout Session in setup mode)."""
    status: str
    """requires_action (the person must save a card at setup_url), succeeded, canceled or failed."""
    setup_id: str | None = None
    setup_url: str | None = None
    setup_intent_id: str | None = None
    payment_method_id: str | None = None
    card: ProviderCard | None = None
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


@dataclass(frozen=True, kw_only=True)
class ProviderDispute:
    """A dispute (chargeback) as the provider shows it."""

    provider_dispute_id: str
    status: str
    """Stripe's: warning_needs_response, warning_under_review, warning_closed, needs_response, under_review,
    won, lost, prevented."""
    amount_minor: int | None
    currency: str | None
    reason: str
    provider_payment_id: str | None
    evidence_due_by: int | None = None
    """Unix seconds."""


@dataclass(frozen=True, kw_only=True)
class BalanceMovement:
    """One balance transaction: money the provider moved in or out of the account, and its fee."""

    provider_txn_id: str
    kind: str
    """charge, refund, dispute (funds withdrawn), dispute_reversal (funds reinstated) or other."""
    amount_minor: int
    """Signed: positive in, negative out."""
    fee_minor: int
    net_minor: int
    currency: str
    created: int
    """Unix seconds."""
    source_id: str | None
    """What moved it: the charge (ch_…), refund (re_…) or dispute (du_…)."""
    provider_payment_id: str | None = None
    provider_refund_id: str | None = None
    provider_dispute_id: str | None = None
    payment_id: str | None = None
    """paywarden's payment id, when the provider's record carries it in its metadata."""
    source_amount_minor: int | None = None
    """Signed like `amount_minor`, in `source_currency`: what was charged, refunded or disputed, when the account
    settled it in another currency (`amount_minor`, `fee_minor` and `net_minor` are then the settled amounts)."""
    source_currency: str | None = None


@dataclass(frozen=True, kw_only=True)
class PlanPrice:
    """A recurring catalog product as the provider bills it (a Price, found by its lookup key = product id)."""

    product_id: str
    name: str
    amount_minor: int
    currency: str
    interval: str
    interval_count: int


@dataclass(frozen=True, kw_only=True)
class SubscriptionRequest:
    subscription_id: str
    """Our subscription id: the provider-side idempotency key, and in the provider's metadata."""
    tenant_id: str
    customer_id: str
    plan: PlanPrice
    provider_customer_id: str
    payment_method: str | None
    """The card every invoice is charged to; None: the person pays the first invoice on its hosted page."""
    payment_method_saved: bool = False
    """`payment_method` is already saved to the customer; otherwise (a card such as pm_card_visa) it is saved now."""
    trial_days: int | None = None


@dataclass(frozen=True, kw_only=True)
class PlanChange:
    provider_subscription_id: str
    plan: PlanPrice
    now: bool
    """True: switch now and charge the prorated difference; False: from the next renewal."""
    idempotency_key: str


@dataclass(frozen=True, kw_only=True)
class CardChange:
    """A card the customer saved, made the one their subscription charges from now on."""

    provider_customer_id: str
    provider_subscription_id: str
    provider_payment_method_id: str
    """The saved card (a payment method of the customer's, pm_…)."""
    idempotency_key: str


@dataclass(frozen=True)
class ProviderInvoice:
    """One invoice of a subscription, in paywarden's words."""

    provider_invoice_id: str
    status: str
    """draft, open, paid, uncollectible or void."""
    amount_minor: int
    currency: str
    provider_subscription_id: str | None
    subscription_id: str | None
    product_id: str | None
    """The catalog product the invoice bills (the subscription's metadata when it was made)."""
    period_start: int | None
    period_end: int | None
    provider_payment_id: str | None = None
    hosted_url: str | None = None
    billing_reason: str | None = None


@dataclass(frozen=True)
class ProviderSubscription:
    """The provider's subscription as it stands, with its latest invoice when the provider gave it."""

    provider_subscription_id: str
    status: str
    """The provider's status: incomplete, incomplete_expired, trialing, active, past_due, canceled, unpaid."""
    subscription_id: str | None
    product_id: str | None
    current_period_start: int | None
    current_period_end: int | None
    cancel_at_period_end: bool = False
    canceled_at: int | None = None
    ended_at: int | None = None
    trial_end: int | None = None
    latest_invoice: ProviderInvoice | None = None
    latest_invoice_id: str | None = None
    saved_card: ProviderCard | None = None
    """The card a start saved to the customer (a payment method such as pm_card_visa was given)."""


@dataclass(frozen=True)
class WebhookEvent:
    """A verified provider event. `payment`, `refund` or `setup` is set for the events that move one;
    `detached_payment_method` for a saved card removed at the provider; `dispute` for a dispute's events."""

    event_id: str
    event_type: str
    payload: dict[str, Any]
    payment: ProviderPayment | None = field(default=None)
    refund: ProviderRefund | None = field(default=None)
    setup: ProviderSetup | None = field(default=None)
    detached_payment_method: str | None = field(default=None)
    dispute: ProviderDispute | None = field(default=None)
    subscription: ProviderSubscription | None = field(default=None)
    invoice: ProviderInvoice | None = field(default=None)


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

    async def retrieve_payment_page(self, checkout_id: str) -> ProviderPayment:
        """A payment paid on the provider's page, as that page (a Checkout Session) knows it: open, paid,
        or expired. Raises ProviderUnavailable."""
        ...

    async def create_customer(self, request: CustomerRequest) -> ProviderCustomer:
        """The provider's customer for ours; safe to repeat (an idempotency key derived from our ids)."""
        ...

    async def retrieve_customer(self, provider_customer_id: str) -> ProviderCustomer | None:
        """None when the provider has no such customer (or it was deleted)."""
        ...

    async def list_cards(self, provider_customer_id: str) -> list[ProviderCard]:
        """The cards saved to the provider's customer, newest first."""
        ...

    async def create_setup(self, request: SetupRequest) -> ProviderSetup:
        """A page where the person saves a card to the customer. Safe to repeat for the same `setup_id`.
        A definite refusal comes back `failed`; an unknown outcome raises ProviderUnavailable."""
        ...

    async def saved_card(self, setup: ProviderSetup) -> ProviderSetup:
        """A succeeded setup with the card it saved (brand, last4, expiry), fetched from the provider when
        the event did not carry it. Raises ProviderUnavailable."""
        ...

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

    async def submit_dispute_evidence(self, provider_dispute_id: str, evidence: dict[str, str]) -> None:
        """Send evidence text fields for a dispute and submit them (Stripe's dispute update with `evidence` and
        `submit=true`). Raises ProviderError when refused or unreachable."""
        ...

    async def balance_movements(self, created_from: int, created_before: int) -> list[BalanceMovement]:
        """Every balance transaction created in [created_from, created_before) (Unix seconds), read page by page,
        newest first. Raises ProviderUnavailable."""

    async def create_subscription(self, request: SubscriptionRequest) -> ProviderSubscription:
        """Start the subscription (its first invoice charged to `payment_method`, or left for the person on
        its hosted page). Safe to repeat for the same `subscription_id`. Raises ProviderError when refused,
        ProviderUnavailable when the outcome is unknown."""
        ...

    async def retrieve_subscription(self, provider_subscription_id: str) -> ProviderSubscription:
        """The provider's subscription now, with its latest invoice. Raises ProviderUnavailable."""
        ...

    async def retrieve_invoice(self, provider_invoice_id: str) -> ProviderInvoice: ...

    async def cancel_subscription(
        self, provider_subscription_id: str, *, at_period_end: bool, idempotency_key: str
    ) -> ProviderSubscription: ...

    async def change_subscription(self, change: PlanChange) -> ProviderSubscription: ...

    async def use_card(self, change: CardChange) -> ProviderSubscription:
        """Make the saved card the customer's default for invoices and the subscription's default payment method:
        every later renewal and retry charges it. Safe to repeat for the same `idempotency_key`. Raises
        ProviderError when refused (a card that is not the customer's), ProviderUnavailable when unknown."""
        ...

    async def pay_invoice(self, provider_invoice_id: str, *, idempotency_key: str) -> ProviderInvoice:
        """Charge an open invoice now, out of the provider's retry schedule, with its subscription's default card;
        the paid invoice. Raises ProviderError when the card is declined (the provider's retries go on),
        ProviderUnavailable when the outcome is unknown."""
        ...

    async def sync_price(self, plan: PlanPrice) -> str:
        """Make sure the provider bills `plan` with a Price whose lookup key is the product id: an existing one
        that matches is kept; otherwise a new Price takes the key and the old one is deactivated (prices are
        never changed). Returns what was done: unchanged, created or replaced."""
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
