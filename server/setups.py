"""Saving a card, once, by the person: recorded before the provider is asked, idempotent per key like a
charge; the provider's page (a Checkout Session in setup mode) is where the person saves it, and the
provider's events (through the inbox) store it as the customer's default — and the card their live
subscriptions charge (server/subscriptions.py, use_saved_cards)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from db import customers, setups
from db.pool import connection, retry_on_deadlock, transaction
from db.setups import Setup, SetupStatus
from server import customers as customer_service
from server import subscriptions
from server.errors import ChargeInProgress, ProviderError
from server.ledger import setup_outcomes
from server.ledger.setup_outcomes import SetupChange
from server.payments import PAGE_SHOWN, PageShown, page_left_open
from server.providers import ProviderSetup, SetupRequest
from server.services import Services
from server.tenancy import Caller

__all__ = ["SetupResult", "SetupStatus", "apply_outcome", "setup_payment_method"]

NEXT_STEP = {
    SetupStatus.CREATED: "Recorded, but the provider has not answered yet. Call setup_payment_method again with the "
    "same idempotency_key to finish it.",
    SetupStatus.REQUIRES_ACTION: "The person must open setup_url and save a card there. Afterwards get_customer "
    "shows the card, and create_charge(..., payment_method='saved') charges it.",
    SetupStatus.SUCCEEDED: "A card is saved: charge it with create_charge(..., payment_method='saved'). The "
    "customer's live subscriptions charge it from now on (a past-due one has its open invoice retried with it).",
    SetupStatus.CANCELED: "The page closed without a card saved. Call setup_payment_method with a NEW "
    "idempotency_key to offer it again.",
    SetupStatus.FAILED: "The provider refused (see failure_reason). Nothing was saved.",
}


class SetupResult(BaseModel):
    setup_id: str = Field(description="paywarden's id for this card setup (set_…).")
    customer_id: str
    status: SetupStatus
    setup_url: str | None = Field(description="The page where the person saves a card (while requires_action).")
    failure_reason: str | None
    created_at: datetime
    replayed: bool = Field(
        description="True when this idempotency_key was used before for this customer: this is that setup."
    )
    setup_page: PageShown = Field(default="not_sent", description=PAGE_SHOWN)
    next_step: str

    def after_page(self, shown: PageShown) -> SetupResult:
        """The result once setup_url was sent to the person: a page turned down leaves the setup open."""
        left_open = page_left_open(shown, "setup_url")
        step = f"{left_open} {self.next_step}" if left_open else self.next_step
        return self.model_copy(update={"setup_page": shown, "next_step": step})

    @classmethod
    def of(cls, setup: Setup, *, replayed: bool) -> SetupResult:
        return cls(
            setup_id=setup.id,
            customer_id=setup.customer_id,
            status=setup.status,
            setup_url=setup.setup_url if setup.status == SetupStatus.REQUIRES_ACTION else None,
            failure_reason=setup.failure_reason,
            created_at=setup.created_at,
            replayed=replayed,
            next_step=NEXT_STEP[setup.status],
        )


async def setup_payment_method(
    services: Services, caller: Caller, customer_id: str, idempotency_key: str
) -> SetupResult:
    """The setup for this key (replayed=True when it was used before); the provider is asked at most once per key."""
    setup, new = await _claim(services, caller, customer_id, idempotency_key)
    if not new:
        return SetupResult.of(await _resume(services, caller, setup), replayed=True)
    return SetupResult.of(await _submit(services, caller, setup), replayed=False)


async def _claim(services: Services, caller: Caller, customer_id: str, idempotency_key: str) -> tuple[Setup, bool]:
    """The new setup (recorded, its lease ours, audited) and True; or the one this key made before and False."""
    setup_id = setups.new_setup_id()
    async with transaction(services.pool) as conn:
        claimed = await setups.claim(
            conn,
            setup_id=setup_id,
            tenant_id=caller.tenant_id,
            customer_id=customer_id,
            idempotency_key=idempotency_key,
            provider=services.provider.name,
            api_key_id=caller.key_id,
            lease_seconds=services.settings.submit_lease_seconds,
        )
        if claimed is None:
            return await setups.by_key(conn, caller.tenant_id, customer_id, idempotency_key), False
        detail = f"setup {setup_id} (idempotency_key {idempotency_key!r})"
        audit = {"actor": "agent", "action": "setup_requested", "detail": detail, "api_key_id": caller.key_id}
        await customers.append_audit(conn, caller.tenant_id, customer_id, **audit)
    return claimed, True


async def _resume(services: Services, caller: Caller, setup: Setup) -> Setup:
    """A replay finds the setup as it is; one a crash or an outage left `created` is finished now."""
    if setup.status != SetupStatus.CREATED:
        return setup
    async with transaction(services.pool) as conn:
        leased = await setups.take_lease(conn, setup.id, services.settings.submit_lease_seconds)
    if leased is None:
        raise ChargeInProgress(
            "The first request with this idempotency_key is still in progress; retry shortly with the same key."
        )
    return await _submit(services, caller, leased)


async def _submit(services: Services, caller: Caller, setup: Setup) -> Setup:
    """The provider's customer (created now if needed), then its page for saving a card; safe to repeat."""
    try:
        provider_customer = await customer_service.provider_customer_id(services, caller, setup.customer_id)
        answer = await services.provider.create_setup(
            SetupRequest(
                setup_id=setup.id,
                tenant_id=setup.tenant_id,
                customer_id=setup.customer_id,
                provider_customer_id=provider_customer,
                page_expires_at=_page_closes(setup.created_at, services.settings.payment_page_hours),
            )
        )
    except ProviderError:
        async with transaction(services.pool) as conn:
            await setups.release_lease(conn, setup.id, setup.submit_lease_until)
        raise
    change = await apply_outcome(services, setup.id, answer, actor="provider", reason="the provider's answer")
    await subscriptions.use_saved_cards(services, change.subscriptions_to_update, actor="provider")
    return change.setup


@retry_on_deadlock
async def apply_outcome(
    services: Services, setup_id: str, outcome: ProviderSetup, *, actor: str, reason: str
) -> SetupChange:
    async with transaction(services.pool) as conn:
        locked = await setups.lock(conn, setup_id, tenant_id=None)
        assert locked is not None  # our own setup, recorded before the provider was asked
        return await setup_outcomes.apply(conn, locked, outcome, actor=actor, reason=reason)


def _page_closes(created_at: datetime, hours: int) -> int:
    """The same instant on every attempt (the provider compares repeated requests), from when it was recorded."""
    return int((created_at + timedelta(hours=hours)).timestamp())


async def latest(services: Services, caller: Caller, customer_id: str, limit: int = 5) -> list[Setup]:
    async with connection(services.pool) as conn:
        return await setups.latest_of_customer(conn, caller.tenant_id, customer_id, limit)
