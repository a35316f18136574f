"""May this customer use this feature now? Answered from what paid payments granted, never from a
charge still in progress; when the answer is no, which catalog products would make it yes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from db import disputes, payments
from db import entitlements as entitlement_rows
from db import subscriptions as subscription_rows
from db.pool import connection
from db.subscriptions import Subscription, SubscriptionStatus
from server import credits
from server.catalog import Product
from server.credits import CreditBalance
from server.errors import DatabaseUnavailable
from server.services import Services
from server.tenancy import Caller

Reason = Literal[
    "active",
    "trialing",
    "past_due",
    "canceled",
    "no_entitlement",
    "expired",
    "payment_pending",
    "insufficient_balance",
    "unknown_feature",
    "disputed",
]
ALLOWED_REASONS = frozenset({"active", "trialing", "past_due"})


class Offer(BaseModel):
    """A catalog product that would grant the feature."""

    product_id: str
    name: str
    amount_minor: int
    currency: str
    price_display: str
    days: int | None = Field(description="How many days of the feature it grants (for credits: until they expire).")
    credits: int | None = Field(default=None, description="How many credits of a metered feature it grants.")
    interval: str | None = Field(
        default=None, description="For a subscription (start_subscription): it renews every week, month or year."
    )

    @classmethod
    def of(cls, product: Product, feature: str) -> Offer:
        grant = next(grant for grant in product.grants if grant.feature == feature)
        return cls(
            product_id=product.id,
            name=product.name,
            amount_minor=product.amount_minor,
            currency=product.currency,
            price_display=product.price_display,
            days=grant.days,
            credits=grant.credits,
            interval=product.interval,
        )


class EntitlementAnswer(BaseModel):
    allowed: bool = Field(
        description="True only when a paid, unexpired entitlement exists right now (for a metered feature: "
        "when remaining >= quantity), or a subscription is trialing or past_due (in the provider's retries)."
    )
    customer_id: str
    feature: str
    reason: Reason
    expires_at: datetime | None = Field(
        description="When access ends (or ended, for 'expired'); for credits, when the next lot expires."
    )
    balance: CreditBalance | None = Field(default=None, description="Set for metered features (credits).")
    pending_payment_id: str | None = Field(default=None, description="The unsettled payment, for 'payment_pending'.")
    offers: list[Offer] = Field(default_factory=list, description="Products that would grant the feature.")
    next_step: str


NEXT_STEP: dict[str, str] = {
    "active": "Go ahead: the customer has paid for this feature.",
    "no_entitlement": "Not allowed. Offer one of the products in offers: start_subscription for a plan (an offer "
    "with an interval), create_charge for the others.",
    "expired": "Not allowed: access has expired. Offer a renewal from offers: start_subscription for a plan, "
    "create_charge for the others.",
    "payment_pending": "Not allowed yet: a payment is in progress (pending_payment_id). Check get_payment; "
    "if a person must act, share its next_action_url.",
    "insufficient_balance": "Not enough credits for this quantity. Offer a top-up from offers and charge it "
    "with create_charge; then reserve_credits before the expensive call.",
    "unknown_feature": "Not allowed: no catalog product grants this feature. Check the feature name.",
    "disputed": "Not allowed while the payment that granted it is disputed with the customer's bank: access is "
    "paused until the dispute closes (it comes back if the merchant wins). Do not charge again for it; tell the "
    "person to contact the merchant.",
    "trialing": "Go ahead: the customer is in a subscription's free trial (until expires_at).",
    "past_due": "Go ahead for now: the subscription's renewal payment failed and the provider is retrying it; "
    "access continues meanwhile. Suggest the person save a new card (setup_payment_method): the open invoice "
    "is retried with it at once.",
    "canceled": "Not allowed: the customer's subscription ended at expires_at. Offer a product from offers "
    "(start_subscription for a plan, create_charge for a pass).",
}
METERED_ACTIVE = "Enough credits: call reserve_credits before the expensive call (or consume_credits for one-shot use)."
UNVERIFIABLE = (
    "Could not verify the entitlement: the payments database is not answering. Treat the customer as NOT "
    "entitled and retry shortly."
)


async def check(
    services: Services, caller: Caller, customer_id: str, feature: str, quantity: int = 1
) -> EntitlementAnswer:
    """Fails closed: when the database cannot answer, the error says to treat the customer as not entitled."""
    try:
        return await _check(services, caller.tenant_id, customer_id, feature, quantity)
    except DatabaseUnavailable:
        raise DatabaseUnavailable(UNVERIFIABLE) from None


async def _check(
    services: Services, tenant_id: str, customer_id: str, feature: str, quantity: int
) -> EntitlementAnswer:
    products = services.catalog.granting(feature)
    if services.catalog.is_metered(feature):
        return await _metered(services, tenant_id, customer_id, feature, quantity, products)
    async with connection(services.pool) as conn:
        plans = [p.id for p in products if p.recurring]
        if plans:
            state, found = await subscription_rows.standing(conn, tenant_id, customer_id, plans, feature)
        else:
            state, found = await entitlement_rows.state(conn, tenant_id, customer_id, feature), None
        sub, paid_through = found or (None, None)
        pending = None
        if state.active_until is None and products:
            pending = await payments.has_open_payment_for(conn, tenant_id, customer_id, [p.id for p in products])
    by_subscription = _subscription_reason(sub, state, paid_through)
    if by_subscription is not None:
        reason, ends = by_subscription
        return _answer(customer_id, feature, reason, ends, None, products)
    reason = _reason(state, pending, has_products=bool(products))
    until = state.active_until or state.disputed_until or state.last_expired_at
    return _answer(customer_id, feature, reason, until, pending, products)


def _subscription_reason(
    sub: Subscription | None, state: entitlement_rows.EntitlementState, paid_through: datetime | None
) -> tuple[Reason, datetime | None] | None:
    """A subscription's own word on access, from the provider's periods and events (not from our clock, which
    the sandbox's test clock runs ahead of): paid through the end of its last paid period, its trial, its grace
    while the provider retries a renewal, its end."""
    if sub is None:
        return None
    if sub.status == SubscriptionStatus.ACTIVE and paid_through is not None and paid_through > datetime.now(UTC):
        return "active", paid_through
    if sub.status == SubscriptionStatus.TRIALING:
        return "trialing", sub.trial_end or sub.current_period_end
    if sub.status == SubscriptionStatus.PAST_DUE:
        return "past_due", sub.current_period_end
    if sub.status in (SubscriptionStatus.CANCELED, SubscriptionStatus.UNPAID) and state.active_until is None:
        return ("canceled", sub.ended_at) if sub.ended_at else None
    return None


def _ended(sub: Subscription | None) -> datetime | None:
    """When the customer's latest subscription to a plan granting the feature ended, if it did."""
    if sub is None or sub.status not in (SubscriptionStatus.CANCELED, SubscriptionStatus.UNPAID):
        return None
    return sub.ended_at


async def _metered(
    services: Services, tenant_id: str, customer_id: str, feature: str, quantity: int, products: list[Product]
) -> EntitlementAnswer:
    view = await credits.view(services, tenant_id, customer_id, feature)
    reason: Reason = "active"
    pending = None
    until = view.next_expiry
    if view.balance.remaining < quantity:
        plans = [p.id for p in products if p.recurring]
        async with connection(services.pool) as conn:
            pending = await payments.has_open_payment_for(conn, tenant_id, customer_id, [p.id for p in products])
            held = await disputes.credits_held(conn, tenant_id, customer_id, feature)
            found = (
                (await subscription_rows.standing(conn, tenant_id, customer_id, plans, feature))[1] if plans else None
            )
        never_granted = view.balance.granted == 0 and view.balance.used == 0
        reason = "payment_pending" if pending else ("no_entitlement" if never_granted else "insufficient_balance")
        ended = _ended(found[0] if found else None)
        if ended is not None and not pending:  # the plan that gave the allowance ended, as for a timed feature
            reason, until = "canceled", ended
        if held and view.balance.remaining + held >= quantity:
            reason = "disputed"
    result = _answer(customer_id, feature, reason, until, pending, products)
    result.balance = view.balance
    if reason == "active":
        result.next_step = METERED_ACTIVE
    return result


def _answer(
    customer_id: str,
    feature: str,
    reason: Reason,
    expires_at: datetime | None,
    pending: str | None,
    products: list[Product],
) -> EntitlementAnswer:
    offers = (
        []
        if reason in ALLOWED_REASONS or reason == "disputed"
        else [Offer.of(product, feature) for product in products]
    )
    return EntitlementAnswer(
        allowed=reason in ALLOWED_REASONS,
        customer_id=customer_id,
        feature=feature,
        reason=reason,
        expires_at=expires_at,
        pending_payment_id=pending,
        offers=offers,
        next_step=NEXT_STEP[reason],
    )


def _reason(state: entitlement_rows.EntitlementState, pending: str | None, *, has_products: bool) -> Reason:
    if state.active_until is not None:
        return "active"
    if state.disputed_until is not None:
        return "disputed"
    if pending is not None:
        return "payment_pending"
    if state.last_expired_at is not None:
        return "expired"
    return "no_entitlement" if has_products else "unknown_feature"
