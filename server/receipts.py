"""Receipts: a succeeded payment's number (per tenant, without gaps: see db/payments.number_receipt) and its
printable page, on an address only the payment's holder knows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from db import receipts, refunds
from db.payments import Payment
from db.pool import connection
from db.refunds import RefundStatus
from server.errors import NotFound, PaywardenError
from server.money import format_amount
from server.services import Services

RECEIPT_PATH = "/receipts/"


def receipt_url(services: Services, payment: Payment) -> str | None:
    """Where the payment's receipt is, once it has one (PAYWARDEN_PUBLIC_URL, else this process's address)."""
    if payment.receipt_token is None:
        return None
    return f"{services.settings.base_url}{RECEIPT_PATH}{payment.receipt_token}"


@dataclass(frozen=True)
class ReceiptRefund:
    at: datetime
    amount: str
    reason: str | None


@dataclass(frozen=True)
class Receipt:
    """What the receipt page shows, formatted for people."""

    number: int
    merchant: str
    payment_id: str
    product: str
    amount: str
    paid_at: datetime
    card: str | None
    """'Visa ending 4242' when paywarden knows the card, else None."""
    refunds: list[ReceiptRefund]
    refunded: str | None
    """The total refunded, when anything was."""
    status: str


async def receipt(services: Services, token: str) -> Receipt:
    """The receipt behind a page's token; NotFound for any other token."""
    async with connection(services.pool) as conn:
        facts = await receipts.by_token(conn, token[:64])
        if facts is None or facts.payment.receipt_number is None:
            raise NotFound("There is no receipt at this address.")
        refunded = [r for r in await refunds.for_payment(conn, facts.payment.id) if r.status == RefundStatus.SUCCEEDED]
    payment = facts.payment
    return Receipt(
        number=payment.receipt_number,
        merchant=facts.merchant,
        payment_id=payment.id,
        product=_product_name(services, payment),
        amount=format_amount(payment.amount_minor, payment.currency),
        paid_at=payment.succeeded_at or payment.updated_at,
        card=f"{facts.card_brand.title()} ending {facts.card_last4}" if facts.card_last4 and facts.card_brand else None,
        refunds=[ReceiptRefund(r.updated_at, format_amount(r.amount_minor, r.currency), r.reason) for r in refunded],
        refunded=format_amount(payment.refunded_minor, payment.currency) if payment.refunded_minor else None,
        status=str(payment.status),
    )


def _product_name(services: Services, payment: Payment) -> str:
    try:
        named = services.catalog.get(payment.product_id).name if payment.product_id else None
    except PaywardenError:  # a product since removed from the catalog
        named = None
    return named or payment.description or payment.product_id or "Payment"
