"""Customers. A customer is a (tenant, customer id) pair: two tenants may each have a customer `alice` who
never meet.

- As the agent, `paywarden customers show` and the console see one (`details`, the one rule for who exists):
  saved cards, the provider customer, access, credit balances, latest payments.
- As an operator looks them up in the console: found by part of their id (`search`), and `profile`: that
  view, with every period of access, the credit ledger, more payments and the customer's own audit.
- At the provider: the provider's customer behind each of ours, created there only when first needed
  (saving a card) or linked by an operator with the cards it already has."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from pydantic import BaseModel, Field

from db import credits, customers, entitlements, payments, reports, subscriptions
from db.credits import LedgerEntry
from db.customers import AuditEntry, Customer, SavedMethod
from db.entitlements import EntitlementRow
from db.pool import connection, transaction
from db.reports import CustomerRow
from server import credits as credit_balances
from server import disputes
from server.disputes import DisputeView
from server.errors import CustomerNotFound, InvalidRequest, NotAllowedNow
from server.fields import HINTS
from server.ledger.setup_outcomes import describe
from server.payment_search import PaymentSummary
from server.payments import PaymentView
from server.providers import CustomerRequest, ProviderCard
from server.services import Services
from server.subscription_views import SubscriptionView
from server.tenancy import Caller, local_caller
from server.text import CUSTOMER_ID_PATTERN

SEARCH_LIMIT = 100
LEDGER_LIMIT = 100
PAYMENTS_LIMIT = 100
HISTORY_LIMIT = 50


@dataclass(frozen=True, kw_only=True)
class CustomerProfile:
    """What the console shows of one customer: what the agent and `paywarden customers show` see (`customer`,
    from `details`: one rule for who exists and what they have), and an operator's depth beside it."""

    tenant_id: str
    customer: CustomerView
    entitlements: list[EntitlementRow]
    """Every period granted, the latest ending first; `state_of` tells where each stands."""
    ledger: list[LedgerEntry]
    """The newest credit ledger entries (up to LEDGER_LIMIT), every feature."""
    payments: list[PaymentSummary]
    """The newest payments (up to PAYMENTS_LIMIT)."""
    history: list[AuditEntry]
    """The customer's own audit, newest first (up to HISTORY_LIMIT): provider links, cards saved and removed."""

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
    """CustomerNotFound, exactly as `details` says it, for a customer the tenant has no record of."""
    view = await details(services, local_caller(tenant_id), customer_id)
    async with connection(services.pool) as conn:
        listed = await payments.page_for_customer(conn, tenant_id, customer_id, None, PAYMENTS_LIMIT, None)
        granted = await entitlements.for_customer(conn, tenant_id, customer_id)
        ledger = await credits.ledger_of(conn, tenant_id, customer_id, LEDGER_LIMIT)
        history = await customers.audit_trail(conn, tenant_id, customer_id, HISTORY_LIMIT)
    return CustomerProfile(
        tenant_id=tenant_id,
        customer=view,
        entitlements=granted,
        ledger=ledger,
        payments=[PaymentSummary.of_payment(payment) for payment in listed],
        history=history,
    )


# --- The agent's view, and the customer at the provider ---------------------------------------------

LATEST_PAYMENTS = 5
CUSTOMER_ID = re.compile(CUSTOMER_ID_PATTERN)
MAX_CUSTOMER_ID_LENGTH = 255
PROVIDER_CUSTOMER_ID = re.compile(r"cus_[A-Za-z0-9]{1,251}")


class SavedCardView(BaseModel):
    payment_method_id: str = Field(description="The provider's id of the saved card (pm_…).")
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool = Field(description="The card create_charge(payment_method='saved') charges.")

    @classmethod
    def of(cls, method: SavedMethod) -> SavedCardView:
        return cls(
            payment_method_id=method.provider_payment_method_id,
            brand=method.brand,
            last4=method.last4,
            exp_month=method.exp_month,
            exp_year=method.exp_year,
            is_default=method.is_default,
        )


class ActiveEntitlement(BaseModel):
    feature: str
    starts_at: datetime
    expires_at: datetime
    payment_id: str = Field(description="The payment that granted it.")
    product_id: str | None = Field(description="The product that payment bought.")


class CreditBalanceView(BaseModel):
    feature: str
    granted: int
    used: int
    reserved: int
    remaining: int
    next_expiry: datetime | None


class CustomerView(BaseModel):
    customer_id: str
    provider_customer_id: str | None = Field(description="The provider's customer (cus_…), once there is one.")
    payment_methods: list[SavedCardView] = Field(description="Saved cards, the default first.")
    entitlements: list[ActiveEntitlement] = Field(description="Periods of access not yet over, by feature.")
    credits: list[CreditBalanceView] = Field(description="Credit balances of metered features.")
    latest_payments: list[PaymentView] = Field(description=f"The newest {LATEST_PAYMENTS} payments.")
    disputes: list[DisputeView] = Field(
        default_factory=list, description="Disputes (chargebacks) against the customer's payments, newest first."
    )
    subscriptions: list[SubscriptionView] = Field(
        default_factory=list, description="Its subscriptions, the newest first (get_subscription has their invoices)."
    )
    next_step: str


async def details(services: Services, caller: Caller, customer_id: str) -> CustomerView:
    """Everything the customer has; another tenant's customer answers exactly like one that does not exist."""
    tenant, provider = caller.tenant_id, services.provider.name
    async with connection(services.pool) as conn:
        if not await customers.has_any_record(conn, tenant, customer_id):
            raise CustomerNotFound(
                f"No customer {customer_id!r}: paywarden has no payments, saved cards or credits for it yet."
            )
        linked = await customers.get(conn, tenant, provider, customer_id)
        methods = await customers.saved_methods(conn, tenant, provider, customer_id)
        granted = await entitlements.current_for_customer(conn, tenant, customer_id)
        features = [account.feature for account in await credits.accounts_of(conn, tenant, customer_id)]
        latest = await payments.page_for_customer(conn, tenant, customer_id, None, LATEST_PAYMENTS, None)
        opened = await disputes.of_customer(conn, tenant, customer_id)
        plans = await subscriptions.of_customer(conn, tenant, customer_id)
    balances = [await _balance(services, tenant, customer_id, feature) for feature in features]
    return CustomerView(
        customer_id=customer_id,
        provider_customer_id=linked.provider_customer_id if linked else None,
        payment_methods=[SavedCardView.of(method) for method in methods],
        entitlements=[ActiveEntitlement(**vars(period)) for period in granted],
        credits=balances,
        latest_payments=[PaymentView.of(payment) for payment in latest],
        disputes=opened,
        subscriptions=[SubscriptionView.of(plan) for plan in plans],
        next_step=_next_step(methods),
    )


async def _balance(services: Services, tenant_id: str, customer_id: str, feature: str) -> CreditBalanceView:
    view = await credit_balances.view(services, tenant_id, customer_id, feature)
    return CreditBalanceView(feature=feature, **view.balance.model_dump(), next_expiry=view.next_expiry)


def _next_step(methods: list[SavedMethod]) -> str:
    if methods:
        return "A saved card can be charged with create_charge(..., payment_method='saved') within the limits."
    return (
        "No saved card. To charge this customer without a payment page each time, call setup_payment_method "
        "and have the person save a card on its setup_url."
    )


async def provider_customer_id(services: Services, caller: Caller, customer_id: str) -> str:
    """The provider's customer for ours, created there now if this is the first time one is needed.

    Creating it is idempotent at the provider (a key derived from our ids); if two processes race, the
    first row written wins and the other's provider customer is simply never used."""
    tenant, provider = caller.tenant_id, services.provider.name
    async with connection(services.pool) as conn:
        existing = await customers.get(conn, tenant, provider, customer_id)
    if existing is not None:
        return existing.provider_customer_id
    created = await services.provider.create_customer(CustomerRequest(tenant_id=tenant, customer_id=customer_id))
    async with transaction(services.pool) as conn:
        await customers.lock_customer(conn, tenant, provider, customer_id)
        row, inserted = await customers.insert(conn, tenant, provider, customer_id, created.provider_customer_id)
        if inserted:
            await customers.append_audit(
                conn,
                tenant,
                customer_id,
                actor="agent" if caller.key_id else "paywarden",
                action="provider_customer_created",
                detail=f"created at the provider as {created.provider_customer_id}",
                api_key_id=caller.key_id,
            )
    return row.provider_customer_id


class LinkResult(BaseModel):
    tenant_id: str
    customer: CustomerView
    previous_provider_customer_id: str | None
    cards_imported: int


@dataclass(frozen=True)
class _Link:
    tenant_id: str
    provider: str
    customer_id: str
    provider_customer_id: str


async def link(
    services: Services, tenant_id: str, customer_id: str, provider_customer_id: str, *, force: bool, operator: str
) -> LinkResult:
    """Point our customer at an existing provider customer (a merchant already on Stripe), after checking it
    exists there; its saved cards come along. Relinking a customer to another provider customer needs
    `force`: the old one's saved cards are forgotten. Audited under the operator's name."""
    _check_link_ids(customer_id, provider_customer_id)
    found = await services.provider.retrieve_customer(provider_customer_id)
    if found is None:
        raise InvalidRequest(
            f"The provider has no customer {provider_customer_id!r} (or it was deleted); check the id."
        )
    cards = await services.provider.list_cards(provider_customer_id)
    wanted = _Link(tenant_id, services.provider.name, customer_id, provider_customer_id)
    async with transaction(services.pool) as conn:
        previous = await _relink(conn, wanted, force=force, operator=operator)
        imported = await _import_cards(conn, wanted, cards, found.default_payment_method)
    view = await details(services, local_caller(tenant_id), customer_id)
    return LinkResult(
        tenant_id=tenant_id, customer=view, previous_provider_customer_id=previous, cards_imported=imported
    )


def _check_link_ids(customer_id: str, provider_customer_id: str) -> None:
    if not CUSTOMER_ID.fullmatch(customer_id) or len(customer_id) > MAX_CUSTOMER_ID_LENGTH:
        raise InvalidRequest(f"The customer id is {HINTS['customer_id']}; got {customer_id!r}.")
    if not PROVIDER_CUSTOMER_ID.fullmatch(provider_customer_id):
        raise InvalidRequest(
            f"A provider customer id looks like cus_ followed by letters and digits (e.g. cus_NffrFeUfNV2Hib); "
            f"got {provider_customer_id!r}."
        )


async def _relink(conn: asyncpg.Connection, wanted: _Link, *, force: bool, operator: str) -> str | None:
    """Under the customer's lock: refuse what must not be, forget the old provider customer's cards, link,
    audit. The provider customer it was linked to before, if any."""
    tenant, provider, customer = wanted.tenant_id, wanted.provider, wanted.customer_id
    await customers.lock_customer(conn, tenant, provider, customer)
    before = await customers.get(conn, tenant, provider, customer)
    previous = before.provider_customer_id if before else None
    moving = previous not in (None, wanted.provider_customer_id)
    if moving and not force:
        raise NotAllowedNow(
            f"Customer {customer!r} is already linked to {previous}; pass --force (in the console: tick “relink”) "
            f"to relink it to {wanted.provider_customer_id} (its saved cards from {previous} are then forgotten)."
        )
    await _check_not_linked_elsewhere(conn, wanted)
    forgotten = await customers.forget_methods(conn, tenant, provider, customer) if previous else 0
    await customers.link(conn, tenant, provider, customer, wanted.provider_customer_id)
    why = f"linked to {wanted.provider_customer_id} by {operator}"
    if moving:
        why += f" (was {previous}; its {forgotten} saved card(s) forgotten)"
    await customers.append_audit(conn, tenant, customer, actor="operator", action="linked", detail=why)
    return previous


async def _check_not_linked_elsewhere(conn: asyncpg.Connection, wanted: _Link) -> None:
    other = await customers.by_provider_id(conn, wanted.provider, wanted.provider_customer_id)
    if other is not None and (other.tenant_id, other.customer_id) != (wanted.tenant_id, wanted.customer_id):
        # another tenant's customer is not named: the caller may see only this tenant
        whom = f"customer {other.customer_id!r}" if other.tenant_id == wanted.tenant_id else "another customer"
        raise NotAllowedNow(
            f"Provider customer {wanted.provider_customer_id} is already linked to {whom}; one provider customer "
            "belongs to one customer."
        )


async def _import_cards(conn: asyncpg.Connection, wanted: _Link, cards: list[ProviderCard], default: str | None) -> int:
    """The provider customer's cards, newest first; its default (else the newest) becomes ours."""
    chosen = default if any(card.provider_payment_method_id == default for card in cards) else None
    chosen = chosen or (cards[0].provider_payment_method_id if cards else None)
    for card in cards:
        method = SavedMethod(
            provider=wanted.provider,
            provider_payment_method_id=card.provider_payment_method_id,
            tenant_id=wanted.tenant_id,
            customer_id=wanted.customer_id,
            brand=card.brand,
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
            is_default=card.provider_payment_method_id == chosen,
            saved_at=datetime.now(UTC),  # not stored: the row takes now()
        )
        await customers.save_method(conn, method)
        audit = {"actor": "operator", "action": "card_imported", "detail": describe(card)}
        await customers.append_audit(conn, wanted.tenant_id, wanted.customer_id, **audit)
    return len(cards)


async def listing(services: Services, tenant_id: str | None) -> list[Customer]:
    async with connection(services.pool) as conn:
        return await customers.listing(conn, services.provider.name, tenant_id)
