"""How a payment looks to an agent: the record, its price in words, and what to do next."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from db.payments import Payment
from server.money import format_amount

NEXT_STEP = {
    "created": "Recorded, but the provider has not answered yet. Call create_charge again with the same "
    "idempotency_key to finish it; that never charges twice.",
    "requires_approval": "Waiting for a person's approval (see approval_reason); nothing is charged until an "
    "operator runs `paywarden approve PAYMENT_ID`. Check again later with get_payment.",
    "pending": "The provider is working on it. Check again later with get_payment; grant nothing until it succeeds.",
    "requires_action": "A person must open next_action_url to complete the payment. Share the link, then "
    "check get_payment or check_entitlement after they have paid.",
    "processing": "The provider is processing the payment. Check again later with get_payment; "
    "grant nothing until it succeeds.",
    "succeeded": "Paid. The product's entitlements are granted; check_entitlement confirms them.",
    "failed": "The payment failed (see failure_reason). Nothing was charged. To try again, ask the person for "
    "another payment method and use a NEW idempotency_key.",
    "canceled": "Canceled; nothing was charged.",
    "partially_refunded": "Paid, and part of it was refunded (refunded_minor); its entitlements stay.",
    "refunded": "Refunded in full; the entitlements it granted are revoked.",
}


def _next_step(payment: Payment) -> str:
    if payment.status == "succeeded" and not payment.grants:
        return "Paid. (An ad-hoc charge grants no entitlements.)"
    return NEXT_STEP[payment.status]


class PaymentView(BaseModel):
    payment_id: str = Field(description="paywarden's id for the payment (pay_…).")
    status: str = Field(
        description="created, requires_approval, pending, requires_action, processing, succeeded, failed, "
        "canceled, partially_refunded or refunded."
    )
    amount_minor: int = Field(description="Amount in the currency's minor units (2000 USD = 20.00 USD).")
    currency: str = Field(description="ISO 4217 code.")
    amount_display: str = Field(description="The amount for people, e.g. '20.00 USD'.")
    customer_id: str
    product_id: str | None
    description: str | None
    provider_payment_id: str | None = Field(description="The provider's id (e.g. Stripe's pi_…).")
    next_action_url: str | None = Field(description="Set when a person must act: the page where they pay.")
    failure_reason: str | None
    approval_reason: str | None = Field(description="Why the charge needs (or needed) a person's approval.")
    refunded_minor: int = Field(description="How much has been refunded, in minor units.")
    created_at: datetime
    updated_at: datetime
    next_step: str = Field(description="What the agent should do next.")

    @classmethod
    def of(cls, payment: Payment, **extra: object) -> PaymentView:
        return cls(
            payment_id=payment.id,
            status=payment.status,
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            amount_display=format_amount(payment.amount_minor, payment.currency),
            customer_id=payment.customer_id,
            product_id=payment.product_id,
            description=payment.description,
            provider_payment_id=payment.provider_payment_id,
            next_action_url=payment.next_action_url,
            failure_reason=payment.failure_reason,
            approval_reason=payment.approval_reason,
            refunded_minor=payment.refunded_minor,
            created_at=payment.created_at,
            updated_at=payment.updated_at,
            next_step=_next_step(payment),
            **extra,
        )
