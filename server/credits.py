"""Prepaid credits for metered features: reserve before an expensive call, settle what was used,
or consume in one go — idempotent per key, never overdrawn, whatever the concurrency.

Every operation locks the (tenant, customer, feature) account row first, lets time act (expired
reservations and lots), then moves credits through server/ledger/credit_moves.py. Everything is per
tenant: balances, idempotency keys (per tenant and customer) and reservations, which another tenant
cannot see.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, Field

from db import credits, disputes
from db.credits import Account, Reservation
from db.pool import connection, retry_on_deadlock, transaction
from server import outbox
from server.catalog import Catalog
from server.errors import IdempotencyKeyReused, InsufficientCredits, InvalidRequest, NotAllowedNow, ReservationNotFound
from server.ledger import credit_moves
from server.services import Services
from server.tenancy import Caller


class CreditBalance(BaseModel):
    granted: int = Field(description="Credits granted by paid purchases and not expired or revoked unspent.")
    used: int
    reserved: int = Field(description="Held by open reservations.")
    remaining: int = Field(description="granted - used - reserved: what can be reserved or consumed now.")

    @classmethod
    def of(cls, account: Account) -> CreditBalance:
        return cls(granted=account.granted, used=account.used, reserved=account.reserved, remaining=account.remaining)


class ReservationResult(BaseModel):
    reservation_id: str = Field(description="Pass to settle_reservation or release_reservation (rsv_…).")
    customer_id: str
    feature: str
    status: str = Field(description="held, settled, released or expired.")
    quantity: int = Field(description="How many credits are (or were) held.")
    used_quantity: int | None = Field(description="What settle_reservation charged.")
    expires_at: datetime = Field(description="A held reservation not settled by then releases itself.")
    balance: CreditBalance
    replayed: bool = Field(
        default=False, description="True when this repeats an earlier identical request; nothing changed."
    )
    note: str | None = Field(default=None, description="Set when a settle came after the reservation expired.")

    @classmethod
    def of(cls, reservation: Reservation, account: Account, **extra: Any) -> ReservationResult:
        return cls(
            reservation_id=reservation.id,
            customer_id=reservation.customer_id,
            feature=reservation.feature,
            status=reservation.status,
            quantity=reservation.quantity,
            used_quantity=reservation.used_quantity,
            expires_at=reservation.expires_at,
            balance=CreditBalance.of(account),
            **extra,
        )


class ConsumeResult(BaseModel):
    customer_id: str
    feature: str
    consumed: int
    balance: CreditBalance
    replayed: bool = Field(
        default=False, description="True when this key was used before for the same request; nothing changed."
    )


class LowBalance(BaseModel):
    """A customer's balance of a metered feature has fallen below the catalog's threshold for it."""

    customer_id: str
    feature: str
    low_balance_threshold: int = Field(description="The catalog's threshold the balance fell below.")
    balance: CreditBalance


class CreditsView(BaseModel):
    """A metered feature as check_entitlement sees it."""

    balance: CreditBalance
    next_expiry: datetime | None


@retry_on_deadlock
async def view(services: Services, tenant_id: str, customer_id: str, feature: str) -> CreditsView:
    async with transaction(services.pool) as conn:
        if await credits.get_account(conn, tenant_id, customer_id, feature) is None:
            return CreditsView(balance=CreditBalance(granted=0, used=0, reserved=0, remaining=0), next_expiry=None)
        before, account = await _open(conn, tenant_id, customer_id, feature)
        await _tell_if_low(conn, services.catalog, before, account)
        return CreditsView(balance=CreditBalance.of(account), next_expiry=await credits.earliest_expiry(conn, account))


@retry_on_deadlock
async def reserve(
    services: Services, caller: Caller, customer_id: str, feature: str, quantity: int, key: str, ttl_seconds: int
) -> ReservationResult:
    require_metered(services, feature)
    request = {"feature": feature, "quantity": quantity, "ttl_seconds": ttl_seconds}
    async with transaction(services.pool) as conn:
        before, account = await _open(conn, caller.tenant_id, customer_id, feature)
        earlier = await _claim_or_replay(conn, caller.tenant_id, customer_id, key, "reserve", request)
        if earlier is not None:
            now = await credits.get_reservation(conn, caller.tenant_id, earlier["reservation_id"])
            assert now is not None
            return ReservationResult.of(now, account, replayed=True)  # as it is now: it may have been settled since
        await _require(conn, account, quantity)
        reservation = await credits.insert_reservation(
            conn, credits.new_reservation_id(), account, quantity, ttl_seconds
        )
        await credit_moves.hold(conn, account, reservation.id, quantity)
        account = await credits.post(
            conn, account, "reserve", reserved=quantity, reservation_id=reservation.id, api_key_id=caller.key_id
        )
        result = ReservationResult.of(reservation, account)
        await credits.save_operation_result(conn, caller.tenant_id, customer_id, key, result.model_dump(mode="json"))
        await _tell_if_low(conn, services.catalog, before, account)
        return result


@retry_on_deadlock
async def settle(services: Services, caller: Caller, reservation_id: str, used: int) -> ReservationResult:
    """Charge what the call used; the rest of the hold goes back. Using more than was reserved
    draws the difference from the balance, and is refused if the balance cannot cover it."""
    async with transaction(services.pool) as conn:
        reservation, before, account = await _locked_reservation(conn, caller.tenant_id, reservation_id)
        if reservation.status == "expired":
            late = await _settle_late(conn, reservation, account, used, caller.key_id)
            await _tell_if_low(conn, services.catalog, before, late.account)
            return late.result
        if reservation.status != "held":
            await _tell_if_low(conn, services.catalog, before, account)
            return _resolved_again(reservation, account, "settled", used)
        usable = await credit_moves.usable_hold(conn, reservation)  # holds on refunded lots cannot be used
        extra = max(used - usable, 0)
        if extra:
            await _require(conn, account, extra, f"settling {used} against a usable hold of {usable}")
            await credit_moves.use(conn, account, extra)
        settled, account = await credit_moves.close(
            conn, account, reservation, "settled", used=used, from_hold=min(used, usable), api_key_id=caller.key_id
        )
        await _tell_if_low(conn, services.catalog, before, account)
        return ReservationResult.of(settled, account)


@dataclass(frozen=True)
class _LateSettle:
    result: ReservationResult
    account: Account


async def _settle_late(
    conn: asyncpg.Connection, reservation: Reservation, account: Account, used: int, api_key_id: str | None
) -> _LateSettle:
    """The call outlived its reservation: what it used is still charged, from the balance, as far as
    the balance goes (never below zero); the shortfall is reported, not hidden."""
    charged = min(used, account.remaining)
    if charged:
        await credit_moves.use(conn, account, charged)
    settled = await credits.resolve_reservation(conn, reservation.id, "settled", used)
    note = f"late settle: the reservation had expired; charged {charged} of {used} used"
    account = await credits.post(
        conn, account, "settle", used=charged, reservation_id=reservation.id, note=note, api_key_id=api_key_id
    )
    shortfall = "" if charged == used else f"; {used - charged} could not be charged (no balance left)"
    return _LateSettle(ReservationResult.of(settled, account, note=note + shortfall), account)


@retry_on_deadlock
async def release(services: Services, caller: Caller, reservation_id: str) -> ReservationResult:
    async with transaction(services.pool) as conn:
        reservation, before, account = await _locked_reservation(conn, caller.tenant_id, reservation_id)
        await _tell_if_low(conn, services.catalog, before, account)  # expiry may have acted
        if reservation.status != "held":
            return _resolved_again(reservation, account, "released", None)
        released, account = await credit_moves.close(conn, account, reservation, "released", api_key_id=caller.key_id)
        return ReservationResult.of(released, account)


@retry_on_deadlock
async def consume(
    services: Services, caller: Caller, customer_id: str, feature: str, quantity: int, key: str
) -> ConsumeResult:
    """In one statement (consume_credits, migrations 0014 and 0118) unless a reservation or lot is due to
    expire: then time acts first, here, and the same statement runs in that transaction."""
    require_metered(services, feature)
    consume_once = _consume_statement(services.catalog, caller, customer_id, feature, quantity, key)
    async with connection(services.pool) as conn:
        done = await consume_once(conn)
    if done.outcome == "time_to_act":
        async with transaction(services.pool) as conn:
            before, account = await _open(conn, caller.tenant_id, customer_id, feature)
            await _tell_if_low(conn, services.catalog, before, account)
            done = await consume_once(conn)
    if done.outcome == "insufficient" and done.account is not None:
        async with connection(services.pool) as conn:
            await _require(conn, done.account, quantity)
    return _consumed(done, customer_id, feature, quantity, key)


def _consume_statement(
    catalog: Catalog, caller: Caller, customer_id: str, feature: str, quantity: int, key: str
) -> Callable[[asyncpg.Connection], Awaitable[credits.Consumed]]:
    """The statement, run without the credits.low_balance event first: the event is built only when the
    database answers that this consume would take the balance below the threshold, and the statement then
    runs again with it (nothing was done the first time)."""
    threshold = catalog.low_balance_threshold(feature)

    def run(conn: asyncpg.Connection, low_event: dict[str, Any] | None) -> Awaitable[credits.Consumed]:
        return credits.consume(
            conn, caller.tenant_id, customer_id, feature, quantity, key,
            request=_consume_request(feature, quantity), note=f"idempotency_key {key!r}", api_key_id=caller.key_id,
            low_threshold=threshold, low_event=low_event, retry_for_seconds=outbox.RETRY_FOR_SECONDS,
        )  # fmt: skip

    async def consume_once(conn: asyncpg.Connection) -> credits.Consumed:
        done = await run(conn, None)
        if done.outcome == "needs_low_balance_event" and threshold is not None:
            empty = CreditBalance(granted=0, used=0, reserved=0, remaining=0)  # filled in by the database
            data = LowBalance(customer_id=customer_id, feature=feature, low_balance_threshold=threshold, balance=empty)
            done = await run(conn, outbox.event(caller.tenant_id, "credits.low_balance", data))
        return done

    return consume_once


def _consumed(done: credits.Consumed, customer_id: str, feature: str, quantity: int, key: str) -> ConsumeResult:
    # time acted in this transaction already; the event went with the second run (the statement asks only once)
    assert done.outcome not in ("time_to_act", "needs_low_balance_event"), done.outcome
    if done.outcome == "consumed" and done.account is not None:
        balance = CreditBalance.of(done.account)
        return ConsumeResult(customer_id=customer_id, feature=feature, consumed=quantity, balance=balance)
    assert done.outcome != "insufficient", done  # refused by consume() already
    _refuse_reuse(key, done.earlier_kind, done.earlier_request, "consume", _consume_request(feature, quantity))
    if done.account is None:  # consumed before its result was kept as a ledger entry (migration 0014)
        return ConsumeResult.model_validate({**done.earlier_result, "replayed": True})
    balance = CreditBalance.of(done.account)
    return ConsumeResult(customer_id=customer_id, feature=feature, consumed=quantity, balance=balance, replayed=True)


def require_metered(services: Services, feature: str) -> None:
    if not services.catalog.is_metered(feature):
        metered = sorted({g.feature for p in services.catalog for g in p.grants if g.metered}) or ["none"]
        shown = feature if len(feature) <= 64 else feature[:64] + "…"
        raise InvalidRequest(
            f"{shown!r} is not sold as credits here; metered features: {', '.join(metered)}.", param="feature"
        )


async def _open(conn: asyncpg.Connection, tenant_id: str, customer_id: str, feature: str) -> tuple[Account, Account]:
    """The account locked, as it was and after time has acted on it (expiry)."""
    locked = await credits.lock_account(conn, tenant_id, customer_id, feature)
    return locked, await credit_moves.expire_due(conn, locked)


async def _tell_if_low(conn: asyncpg.Connection, catalog: Catalog, before: Account, after: Account) -> None:
    """credits.low_balance to the merchant when this transaction took the balance from at or above the
    feature's threshold to below it: once per crossing, quiet until a top-up lifts it again."""
    threshold = catalog.low_balance_threshold(after.feature)
    if threshold is None or not before.remaining >= threshold > after.remaining:
        return
    low = LowBalance(
        customer_id=after.customer_id,
        feature=after.feature,
        low_balance_threshold=threshold,
        balance=CreditBalance.of(after),
    )
    await outbox.record(conn, after.tenant_id, "credits.low_balance", low)


async def _claim_or_replay(
    conn: asyncpg.Connection, tenant_id: str, customer_id: str, key: str, kind: str, request: dict[str, Any]
) -> dict[str, Any] | None:
    """None when this call took the key; else the first result for it, if it was the same request."""
    earlier = await credits.claim_operation(conn, tenant_id, customer_id, key, kind, request)
    if earlier is None:
        return None
    _refuse_reuse(key, earlier["kind"], earlier["request"], kind, request)
    return earlier["result"]


def _refuse_reuse(key: str, earlier_kind: str | None, earlier_request: Any, kind: str, request: dict[str, Any]) -> None:
    if earlier_kind != kind or earlier_request != request:
        raise IdempotencyKeyReused(
            f"idempotency_key {key!r} was already used for a different credit operation "
            f"({earlier_kind} {earlier_request}). Use a new key for a new operation."
        )


def _consume_request(feature: str, quantity: int) -> dict[str, Any]:
    """What a consume's idempotency key is bound to."""
    return {"feature": feature, "quantity": quantity}


async def _locked_reservation(
    conn: asyncpg.Connection, tenant_id: str, reservation_id: str
) -> tuple[Reservation, Account, Account]:
    """Account first, then the reservation: the lock order every credit operation uses. Another
    tenant's reservation is not found, with the same message as an id that never existed."""
    found = await credits.get_reservation(conn, tenant_id, reservation_id)
    if found is None:
        raise ReservationNotFound(
            f"No reservation {reservation_id!r}. Use the reservation_id reserve_credits returned."
        )
    before, account = await _open(conn, tenant_id, found.customer_id, found.feature)
    reservation = await credits.get_reservation(conn, tenant_id, reservation_id, lock=True)
    assert reservation is not None
    return reservation, before, account


async def _require(conn: asyncpg.Connection, account: Account, quantity: int, doing: str | None = None) -> None:
    """InsufficientCredits unless the account covers `quantity`. When what open disputes hold would cover it,
    the refusal says so, as check_entitlement's `disputed` does: selling more to a customer whose bank is taking
    the payment back is not the answer."""
    if account.remaining >= quantity:
        return
    short = (
        f"Not enough {account.feature} for customer {account.customer_id!r}: {account.remaining} remaining "
        f"({account.reserved} reserved), {doing or f'{quantity} asked'}."
    )
    held = await disputes.credits_held(conn, account.tenant_id, account.customer_id, account.feature)
    if held and account.remaining + held >= quantity:  # short only by what the dispute holds
        raise InsufficientCredits(
            f"{short} {held} more are held while the payment that granted them is disputed with the customer's "
            "bank; they come back if the merchant wins. Do not charge again for them; tell the person to contact "
            "the merchant."
        )
    raise InsufficientCredits(
        f"{short} Offer the customer a top-up (check_entitlement lists the products) and charge it with create_charge."
    )


def _resolved_again(reservation: Reservation, account: Account, wanted: str, used: int | None) -> ReservationResult:
    """A second settle or release: the same answer again if it is the same request, else a clear refusal."""
    if reservation.status == wanted and (wanted != "settled" or reservation.used_quantity == used):
        return ReservationResult.of(reservation, account, replayed=True)
    if reservation.status == "expired":  # only release gets here (a late settle charges): it released itself
        return ReservationResult.of(reservation, account, replayed=True)
    detail = f" with used_quantity {reservation.used_quantity}" if reservation.status == "settled" else ""
    raise NotAllowedNow(f"Reservation {reservation.id} was already {reservation.status}{detail}; it resolves once.")
