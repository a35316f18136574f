"""Customers as an operator looks them up: found by part of their id, and everything paywarden holds about one
(their entitlements, credit balances and ledger, payments). A customer is a (tenant, customer id) pair: two
tenants may each have a customer `alice` who never meet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from db import credits, entitlements, payments, reports
from db.credits import Account, LedgerEntry
from db.entitlements import EntitlementRow
from db.pool import connection
from db.reports import CustomerRow
from server.errors import NotFound
from server.payment_search import PaymentSummary
from server.services import Services

SEARCH_LIMIT = 100
LEDGER_LIMIT = 100
PAYMENTS_LIMIT = 100


@dataclass(frozen=True, kw_only=True)
class CustomerProfile:
    tenant_id: str
    customer_id: str
    entitlements: list[EntitlementRow]
    """Every period granted, the latest ending first; `state_of` tells where each stands."""
    credit_accounts: list[Account]
    ledger: list[LedgerEntry]
    """The newest credit ledger entries (up to LEDGER_LIMIT), every feature."""
    payments: list[PaymentSummary]
    """The newest payments (up to PAYMENTS_LIMIT)."""

    @staticmethod
    def state_of(entitlement: EntitlementRow) -> str:
        """`revoked` (refunded), `active` (now), `upcoming` (a purchase stacked after the current one), `expired`."""
        now = datetime.now(UTC)
        if entitlement.revoked_at is not None:
            return "revoked"
        if entitlement.expires_at <= now:
            return "expired"
        return "active" if entitlement.starts_at <= now else "upcoming"


async def search(services: Services, tenant_id: str | None, text: str = "") -> list[CustomerRow]:
    """Customers whose id contains `text` (every customer when empty), the most recently active first."""
    async with connection(services.pool) as conn:
        return await reports.customers(conn, tenant_id, text.strip() or None, SEARCH_LIMIT)


async def profile(services: Services, tenant_id: str, customer_id: str) -> CustomerProfile:
    """NotFound for a customer the tenant has no payment or credit account of."""
    async with connection(services.pool) as conn:
        listed = await payments.page_for_customer(conn, tenant_id, customer_id, None, PAYMENTS_LIMIT, None)
        accounts = await credits.accounts_of(conn, tenant_id, customer_id)
        if not listed and not accounts:
            raise NotFound(f"No customer {customer_id!r} in tenant {tenant_id!r}.")
        granted = await entitlements.for_customer(conn, tenant_id, customer_id)
        ledger = await credits.ledger_of(conn, tenant_id, customer_id, LEDGER_LIMIT)
    return CustomerProfile(
        tenant_id=tenant_id,
        customer_id=customer_id,
        entitlements=granted,
        credit_accounts=accounts,
        ledger=ledger,
        payments=[PaymentSummary.of_payment(payment) for payment in listed],
    )
