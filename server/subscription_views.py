"""A subscription as callers see it: get_customer, the subscription tools and the HTTP API answer with it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from db.subscriptions import Subscription, SubscriptionStatus

NEXT_STEP: dict[SubscriptionStatus, str] = {
    SubscriptionStatus.INCOMPLETE: "Not paid yet. If next_action_url is set, the person must open it and pay the "
    "first invoice; check again with get_subscription. Grant nothing until it is active or trialing.",
    SubscriptionStatus.TRIALING: "In its free trial: the customer has access until trial_end, then the first "
    "invoice is charged.",
    SubscriptionStatus.ACTIVE: "Paid: the customer has access until current_period_end; it renews by itself.",
    SubscriptionStatus.PAST_DUE: "A renewal payment failed; access continues while the provider retries it on its "
    "schedule. To recover now, ask the person to save a new card (setup_payment_method): once they have, the "
    "subscription charges that card and its open invoice is retried with it at once — get_subscription then "
    "shows it active (if the new card is declined too, it stays past_due).",
    SubscriptionStatus.CANCELED: "Ended: access stopped at ended_at. Start a new subscription to subscribe again.",
    SubscriptionStatus.UNPAID: "The provider gave up collecting a renewal: access has ended until an invoice is paid.",
}


class SubscriptionView(BaseModel):
    subscription_id: str = Field(description="paywarden's id for the subscription (subs_…).")
    customer_id: str
    product_id: str
    status: SubscriptionStatus = Field(
        description="incomplete (first invoice unpaid), trialing, active, past_due (a renewal failed; access "
        "continues while the provider retries), canceled (final) or unpaid (access ended)."
    )
    cancel_at_period_end: bool = Field(description="It ends at current_period_end instead of renewing.")
    pending_product_id: str | None = Field(description="The plan it switches to at the next renewal.")
    current_period_start: datetime | None
    current_period_end: datetime | None = Field(description="Access runs until then (when active or past_due).")
    trial_end: datetime | None
    canceled_at: datetime | None
    ended_at: datetime | None = Field(description="When access ended, for canceled or unpaid subscriptions.")
    next_action_url: str | None = Field(description="The page where the person pays the first invoice.")
    first_payment_id: str = Field(description="The payment of the first invoice (what limits and approval saw).")
    provider_subscription_id: str | None = Field(description="The provider's id (e.g. Stripe's sub_…).")
    next_step: str = Field(description="What the agent should do next.")

    @classmethod
    def of(cls, sub: Subscription, **extra: object) -> SubscriptionView:
        return cls(
            subscription_id=sub.id,
            customer_id=sub.customer_id,
            product_id=sub.product_id,
            status=sub.status,
            cancel_at_period_end=sub.cancel_at_period_end,
            pending_product_id=sub.pending_product_id,
            current_period_start=sub.current_period_start,
            current_period_end=sub.current_period_end,
            trial_end=sub.trial_end,
            canceled_at=sub.canceled_at,
            ended_at=sub.ended_at,
            next_action_url=sub.next_action_url,
            first_payment_id=sub.first_payment_id,
            provider_subscription_id=sub.provider_subscription_id,
            next_step=_next_step(sub),
            **extra,
        )


def _next_step(sub: Subscription) -> str:
    """NEXT_STEP for its status, where the rest of the subscription does not say otherwise."""
    if sub.cancel_at_period_end and sub.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
        until = "trial_end" if sub.status == SubscriptionStatus.TRIALING else "current_period_end"
        return f"Canceled at the period's end: the customer has access until {until}, then it ends instead of renewing."
    if sub.status == SubscriptionStatus.CANCELED and sub.ended_at is None:
        return (
            "Ended before it began: its first payment did not go through (get_payment on first_payment_id says why), "
            "and nothing was granted. Start a new subscription, with another card, to subscribe."
        )
    return NEXT_STEP[sub.status]
