"""Payments as callers see them: one payment with its audit timeline, and a customer's payments page
by page. The MCP tools, the CLI and the HTTP API all answer with these shapes."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from db import audit, payments
from db.payments import Payment, PaymentStatus
from db.pool import connection
from server import disputes, receipts
from server.disputes import DisputeView
from server.errors import InvalidRequest, PaymentNotFound
from server.money import format_amount
from server.services import Services
from server.tenancy import Caller

__all__ = [
    "PAGE_SHOWN",
    "PageShown",
    "PaymentDetails",
    "PaymentPage",
    "PaymentStatus",
    "PaymentView",
    "details",
    "page",
    "page_left_open",
]

PageShown = Literal["accepted", "declined", "cancelled", "not_sent"]
"""What became of a page (to pay, authenticate, or save a card) sent to the person through their MCP client
as a URL elicitation: `accepted` means they chose to open it — not that they paid."""
PAGE_SHOWN = (
    "What became of the page sent to the person through their MCP client (URL elicitation): accepted (they "
    "chose to open it; that is not paying), declined or cancelled (it stays open: they may still use the link "
    "until it expires), or not_sent (this client cannot show pages: share the link with the person yourself)."
)


def page_left_open(shown: PageShown, link_field: str) -> str | None:
    """What to tell the agent when the person turned the page down for now, else None."""
    if shown not in ("declined", "cancelled"):
        return None
    return (
        f"The person {shown} the page for now. Nothing happened; it stays open, and they may still use "
        f"{link_field} until it expires. Check again later."
    )


NEXT_STEP: dict[PaymentStatus, str] = {
    PaymentStatus.CREATED: "Recorded, but the provider has not answered yet. Call create_charge again with the same "
    "idempotency_key to finish it; that never charges twice.",
    PaymentStatus.REQUIRES_APPROVAL: "Waiting for a person's approval (see approval_reason); nothing is charged until "
    "an operator approves it (in the console, or `paywarden approve PAYMENT_ID`). Check again later with get_payment.",
    PaymentStatus.PENDING: "The provider is working on it. Check again later with get_payment; grant nothing until "
    "it succeeds.",
    PaymentStatus.REQUIRES_ACTION: "A person must open next_action_url to complete the payment. Share the link, "
    "then check get_payment or check_entitlement after they have paid.",
    PaymentStatus.PROCESSING: "The provider is processing the payment. Check again later with get_payment; "
    "grant nothing until it succeeds.",
    PaymentStatus.SUCCEEDED: "Paid. The product's entitlements are granted; check_entitlement confirms them.",
    PaymentStatus.FAILED: "The payment failed (see failure_reason). Nothing was charged. To try again, ask the person "
    "for another payment method and use a NEW idempotency_key.",
    PaymentStatus.CANCELED: "Canceled; nothing was charged.",
    PaymentStatus.PARTIALLY_REFUNDED: "Paid, and part of it was refunded (refunded_minor); the periods it granted "
    "stay, and the same share of any credits it granted was taken back.",
    PaymentStatus.REFUNDED: "Refunded in full; the entitlements it granted are revoked.",
}


class PaymentView(BaseModel):
    payment_id: str = Field(description="paywarden's id for the payment (pay_…).")
    status: PaymentStatus
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
    receipt_number: int | None = Field(
        default=None, description="The merchant's receipt number (given when the payment succeeded; no gaps)."
    )
    created_at: datetime
    updated_at: datetime
    subscription_id: str | None = Field(
        default=None, description="The subscription whose invoice this payment is (subs_…), if any."
    )
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
            receipt_number=payment.receipt_number,
            created_at=payment.created_at,
            updated_at=payment.updated_at,
            subscription_id=payment.subscription_id,
            next_step=_next_step(payment),
            **extra,
        )


def _next_step(payment: Payment) -> str:
    if payment.status == PaymentStatus.SUCCEEDED and not payment.grants:
        return "Paid. (An ad-hoc charge grants no entitlements.)"
    if payment.status == PaymentStatus.CANCELED and payment.failure_reason:  # who said no, or what ran out
        return f"Canceled: {payment.failure_reason}. Nothing was charged."
    return NEXT_STEP[payment.status]


class TimelineEntry(BaseModel):
    at: datetime
    actor: str = Field(description="Who made the change: agent, person, provider, webhook, reconciler or operator.")
    from_status: str | None
    to_status: str
    reason: str | None
    api_key_id: str | None = Field(default=None, description="The API key the agent acted with, if any.")


class PaymentDetails(PaymentView):
    timeline: list[TimelineEntry] = Field(description="Every status change, oldest first.")
    receipt_url: str | None = Field(
        default=None, description="The printable receipt page, for the person who paid (an unguessable link)."
    )
    disputes: list[DisputeView] = Field(
        default_factory=list, description="Disputes (chargebacks) the customer's bank opened against this payment."
    )


class PaymentPage(BaseModel):
    payments: list[PaymentView]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page.")


async def details(services: Services, caller: Caller, payment_id: str) -> PaymentDetails:
    """Another tenant's payment is answered exactly like one that does not exist."""
    async with connection(services.pool) as conn:
        payment = await payments.get(conn, payment_id, tenant_id=caller.tenant_id)
        if payment is None:
            raise PaymentNotFound(
                f"No payment with payment_id {payment_id!r}. Use the payment_id create_charge returned."
            )
        entries = await audit.timeline(conn, payment_id)
        opened = await disputes.of_payment(conn, payment.tenant_id, payment.id)
    timeline = [TimelineEntry(**vars(entry)) for entry in entries]
    shown = PaymentDetails.of(
        payment, timeline=timeline, receipt_url=receipts.receipt_url(services, payment), disputes=opened
    )
    charged_back = [dispute for dispute in opened if dispute.status in disputes.CHARGED_BACK]
    return shown.model_copy(update={"next_step": _charged_back_step(charged_back[0])}) if charged_back else shown


def _charged_back_step(dispute: DisputeView) -> str:
    """What to do with a payment the customer's bank has taken back (its status stays succeeded: the charge
    itself happened)."""
    if dispute.status == "lost":
        return (
            f"Charged back: dispute {dispute.dispute_id} was lost, the customer's bank gave {dispute.amount_display} "
            "back, and what the payment granted is revoked. Do not refund it; check_entitlement tells what the "
            "customer has now."
        )
    kept = "paused" if dispute.access_suspended else "kept"
    return (
        f"Disputed: the customer's bank opened dispute {dispute.dispute_id} ({dispute.status}) and took "
        f"{dispute.amount_display} back for now; what the payment granted is {kept} until it closes. Do not refund "
        "it or charge again for it; the merchant answers the dispute with evidence."
    )


async def page(
    services: Services,
    caller: Caller,
    customer_id: str,
    *,
    status: PaymentStatus | None = None,
    limit: int = 20,
    cursor: str | None = None,
) -> PaymentPage:
    """A customer's payments, newest first, `limit` at a time; `cursor` continues where a page ended."""
    after = decode_cursor(cursor) if cursor else None
    async with connection(services.pool) as conn:
        rows = await payments.page_for_customer(conn, caller.tenant_id, customer_id, status, limit + 1, after)
    shown, more = rows[:limit], len(rows) > limit
    return PaymentPage(
        payments=[PaymentView.of(payment) for payment in shown],
        next_cursor=encode_cursor(shown[-1].created_at, shown[-1].id) if more else None,
    )


def encode_cursor(created_at: datetime, payment_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), payment_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, payment_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(created_at), str(payment_id)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidRequest(
            "cursor is not one this listing returned; pass next_cursor exactly, or omit it.", param="cursor"
        ) from None
