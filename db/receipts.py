"""Receipts: what a succeeded payment's printable page shows, found by the page's unguessable token."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from db.payments import Payment


@dataclass(frozen=True)
class ReceiptFacts:
    payment: Payment
    merchant: str
    card_brand: str | None
    card_last4: str | None


async def by_token(connection: asyncpg.Connection, token: str) -> ReceiptFacts | None:
    """The payment whose receipt page this is, its tenant's name, and the saved card it was charged to (if
    paywarden knows that card)."""
    row = await connection.fetchrow(
        """
        SELECT p.*, t.name AS merchant, m.brand AS card_brand, m.last4 AS card_last4
          FROM receipts r
          JOIN payments p ON p.tenant_id = r.tenant_id AND p.id = r.payment_id
          JOIN tenants t ON t.id = p.tenant_id
          LEFT JOIN saved_payment_methods m
            ON m.tenant_id = p.tenant_id AND m.provider = p.provider
           AND m.provider_payment_method_id = p.payment_method
         WHERE r.token = $1
        """,
        token,
    )
    if row is None:
        return None
    fields = dict(row)
    facts = {name: fields.pop(name) for name in ("merchant", "card_brand", "card_last4")}
    return ReceiptFacts(payment=Payment.from_row(fields), **facts)
