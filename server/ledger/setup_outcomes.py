"""A card being saved, and what becomes of it: the one place a setup's status changes.

    created → requires_action → succeeded | canceled | failed   (created may also settle directly)

A setup that succeeds stores the card it saved as the customer's default (brand, last4, expiry — never
card data), in the same transaction, audited; a card saved to another provider customer than the one
paywarden holds for the customer is refused, never stored. The customer's live subscriptions are marked, in
that transaction too, to charge the new card from now on: server/subscriptions.py (use_saved_card) tells the
provider once it commits, and the reconciler finishes what it could not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from db import customers, setups
from db import subscriptions as stored_subscriptions
from db.customers import SavedMethod
from db.setups import Setup, SetupStatus
from server.providers import ProviderCard, ProviderSetup

Status = SetupStatus
ALLOWED: dict[SetupStatus, frozenset[SetupStatus]] = {
    Status.CREATED: frozenset({Status.REQUIRES_ACTION, Status.SUCCEEDED, Status.CANCELED, Status.FAILED}),
    Status.REQUIRES_ACTION: frozenset({Status.SUCCEEDED, Status.CANCELED, Status.FAILED}),
    Status.SUCCEEDED: frozenset(),
    Status.CANCELED: frozenset(),
    Status.FAILED: frozenset(),
}


@dataclass(frozen=True)
class SetupChange:
    applied: bool
    setup: Setup
    note: str | None = None
    subscriptions_to_update: tuple[str, ...] = ()
    """The customer's live subscriptions that are to charge the card this setup saved (use_saved_card)."""


async def apply(
    connection: asyncpg.Connection, locked: Setup, outcome: ProviderSetup, *, actor: str, reason: str
) -> SetupChange:
    """Move the setup to what the provider says, if the machine allows it; on success save the card."""
    if outcome.provider_setup_id and not locked.provider_setup_id:
        await setups.attach_provider_id(connection, locked.id, outcome.provider_setup_id)
    to = SetupStatus(outcome.status)
    if to == locked.status:
        return SetupChange(False, locked, f"setup {locked.id} is already {locked.status}")
    if to not in ALLOWED[locked.status]:
        return SetupChange(False, locked, f"out of order: setup {locked.id} is {locked.status} and cannot become {to}")
    marked: list[str] = []
    if to == Status.SUCCEEDED:
        refusal = await _save_card(connection, locked, outcome.card, actor)
        if refusal:
            return SetupChange(False, locked, refusal)
        assert outcome.card is not None
        marked = await _for_live_subscriptions(connection, locked, outcome.card, actor)
    updated = await setups.update(
        connection,
        locked.id,
        to,
        provider_setup_id=outcome.provider_setup_id,
        setup_url=outcome.setup_url,
        provider_payment_method_id=outcome.card.provider_payment_method_id if outcome.card else None,
        failure_reason=outcome.failure_reason if to in (Status.CANCELED, Status.FAILED) else None,
    )
    await customers.append_audit(
        connection,
        locked.tenant_id,
        locked.customer_id,
        actor=actor,
        action=f"setup_{to}",
        detail=f"setup {locked.id}: {locked.status} -> {to} ({reason})",
    )
    return SetupChange(True, updated, subscriptions_to_update=tuple(marked))


async def _for_live_subscriptions(
    connection: asyncpg.Connection, setup: Setup, card: ProviderCard, actor: str
) -> list[str]:
    """The card the person saved is the one their live subscriptions charge from now on (Stripe's advice: a
    new card replaces the one a failing renewal is retried with)."""
    why = f"{describe(card)} saved (setup {setup.id}): renewals are to charge it"
    return await stored_subscriptions.mark_card_to_apply(
        connection, setup.tenant_id, setup.provider, setup.customer_id, card.provider_payment_method_id,
        actor=actor, reason=why,
    )  # fmt: skip


async def _save_card(connection: asyncpg.Connection, setup: Setup, card: ProviderCard | None, actor: str) -> str | None:
    """Store the saved card as the customer's default; the reason it cannot be, if so."""
    if card is None:
        return f"setup {setup.id} succeeded at the provider without a card paywarden can charge"
    owner = CardOwner(tenant_id=setup.tenant_id, provider=setup.provider, customer_id=setup.customer_id)
    if not await save_card(connection, owner, card, actor=actor, why=f"setup {setup.id}"):
        return f"the card of setup {setup.id} was saved to another provider customer than this customer's"
    return None


@dataclass(frozen=True)
class CardOwner:
    tenant_id: str
    provider: str
    customer_id: str


async def save_card(
    connection: asyncpg.Connection, owner: CardOwner, card: ProviderCard, *, actor: str, why: str
) -> bool:
    """A card saved at the provider becomes the customer's default, audited (`why`: what saved it); False when it
    belongs to another provider customer than this customer's."""
    await customers.lock_customer(connection, owner.tenant_id, owner.provider, owner.customer_id)
    holder = await customers.get(connection, owner.tenant_id, owner.provider, owner.customer_id)
    if holder is None or card.provider_customer_id not in (None, holder.provider_customer_id):
        return False
    method = SavedMethod(
        provider=owner.provider,
        provider_payment_method_id=card.provider_payment_method_id,
        tenant_id=owner.tenant_id,
        customer_id=owner.customer_id,
        brand=card.brand,
        last4=card.last4,
        exp_month=card.exp_month,
        exp_year=card.exp_year,
        is_default=True,
        saved_at=datetime.now(UTC),  # not stored: the row takes now()
    )
    if await customers.save_method_as_default(connection, method):
        await customers.append_audit(
            connection,
            owner.tenant_id,
            owner.customer_id,
            actor=actor,
            action="card_saved",
            detail=f"{describe(method)} saved as the default payment method ({why})",
        )
    return True


def describe(method: SavedMethod | ProviderCard) -> str:
    """'visa ending 4242, expires 12/2034' — what a person would recognise."""
    return f"{method.brand} ending {method.last4}, expires {method.exp_month:02d}/{method.exp_year}"
