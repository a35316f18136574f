"""Everything that happened to one payment, for a person looking at it: its audit timeline, its refunds, the
inbox events that touched it, the entitlements and credits it granted, and where to see it at the provider."""

from __future__ import annotations

from dataclasses import dataclass, field

from db import audit, credits, entitlements, payments, reports
from db import refunds as refund_rows
from db.credits import Lot
from db.entitlements import Entitlement
from db.payments import Payment
from db.pool import connection
from db.refunds import Refund
from server import disputes, receipts
from server.disputes import DisputeView
from server.errors import PaymentNotFound
from server.inbox import InboxEntry
from server.payment_search import PaymentSummary
from server.payments import TimelineEntry
from server.providers import is_live
from server.refunds import refundable
from server.services import Services


@dataclass(frozen=True, kw_only=True)
class PaymentHistory:
    payment: PaymentSummary
    timeline: list[TimelineEntry]
    refunds: list[Refund]
    events: list[InboxEntry]
    entitlements: list[Entitlement]
    credit_lots: list[Lot]
    provider_url: str | None
    """The payment in the provider's dashboard, when the provider is a real one."""
    refundable_minor: int
    """What could still be refunded: paid, minus refunded, minus refunds still in flight (0 when unpaid)."""
    in_flight_minor: int
    """What refunds not settled yet hold back."""
    disputes: list[DisputeView] = field(default_factory=list)
    receipt_number: int | None = None
    receipt_url: str | None = None

    @property
    def charged_back_by(self) -> DisputeView | None:
        """The chargeback that refuses refunds of this payment (server/refunds.py), if any."""
        return next((d for d in self.disputes if d.status in disputes.CHARGED_BACK), None)


async def find(services: Services, payment_id: str, tenant_id: str | None) -> Payment:
    """The payment, if it belongs to `tenant_id` (None: any tenant); another tenant's is PaymentNotFound."""
    async with connection(services.pool) as conn:
        payment = await payments.get(conn, payment_id, tenant_id=tenant_id)
    if payment is None:
        raise PaymentNotFound(f"No payment {payment_id!r}.")
    return payment


async def history(services: Services, payment_id: str, tenant_id: str | None) -> PaymentHistory:
    """Another tenant's payment (for a `tenant_id`) is answered exactly like one that does not exist."""
    payment = await find(services, payment_id, tenant_id)
    async with connection(services.pool) as conn:
        timeline = await audit.timeline(conn, payment.id)
        refunds = await refund_rows.for_payment(conn, payment.id)
        events = await reports.inbox_events_of_payment(conn, payment.id)
        granted = await entitlements.of_payment(conn, payment.id)
        lots = await credits.lots_of_payment(conn, payment.id)
        opened = await disputes.of_payment(conn, payment.tenant_id, payment.id)
    return PaymentHistory(
        payment=PaymentSummary.of_payment(payment),
        timeline=[TimelineEntry(**vars(entry)) for entry in timeline],
        refunds=refunds,
        events=[InboxEntry(**dict(row)) for row in events],
        entitlements=granted,
        credit_lots=lots,
        provider_url=provider_dashboard_url(services, payment),
        refundable_minor=refundable(payment, _in_flight(refunds)),
        in_flight_minor=_in_flight(refunds),
        disputes=opened,
        receipt_number=payment.receipt_number,
        receipt_url=receipts.receipt_url(services, payment),
    )


def _in_flight(refunds: list[Refund]) -> int:
    return sum(refund.amount_minor for refund in refunds if refund.status in refund_rows.OPEN)


def provider_dashboard_url(services: Services, payment: Payment) -> str | None:
    """Stripe's dashboard page of the payment intent; None for the sandbox (it has no dashboard)."""
    real_stripe = services.settings.provider == "stripe" and services.settings.stripe_api_base is None
    if payment.provider != "stripe" or not payment.provider_payment_id or not real_stripe:
        return None
    mode = "" if is_live(services.settings) else "test/"
    return f"https://dashboard.stripe.com/{mode}payments/{payment.provider_payment_id}"
