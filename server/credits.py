"""Prepaid credits for metered features: reserve before an expensive call, settle what was used,
or consume in one go — idempotent per key, never overdrawn, whatever the concurrency.

Every operation locks the (tenant, customer, feature) account row first, lets time act (expired
reservations and lots), then moves credits through db/credit_moves.py. Everything is per tenant:
balances, idempotency keys (per tenant and customer) and reservations, which another tenant
cannot see.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg

from db import credit_moves, credits
from db.credits import Account, Reservation
from db.pool import retry_on_deadlock, transaction
from server.errors import IdempotencyKeyReused, InvalidRequest, NotAllowedNow, NotFound
from server.services import Services


class InsufficientCredits(InvalidRequest):
    """Not enough credits."""

    status = 402


class ReservationNotFound(NotFound):
    """No reservation with that reservation_id."""


@dataclass(frozen=True)
class Balance:
    granted: int
    used: int
    reserved: int
    remaining: int

    @classmethod
    def of(cls, account: Account) -> Balance:
        return cls(account.granted, account.used, account.reserved, account.remaining)


@dataclass(frozen=True)
class CreditsView:
    """A metered feature as check_entitlement sees it."""

    balance: Balance
    next_expiry: datetime | None


@retry_on_deadlock
async def view(services: Services, tenant_id: str, customer_id: str, feature: str) -> CreditsView:
    async with transaction(services.pool) as conn:
        if await credits.get_account(conn, tenant_id, customer_id, feature) is None:
            return CreditsView(Balance(0, 0, 0, 0), None)
        account = await _open(conn, tenant_id, customer_id, feature)
        return CreditsView(Balance.of(account), await credits.earliest_expiry(conn, account))


@retry_on_deadlock
async def reserve(
    services: Services,
    tenant_id: str,
    customer_id: str,
    feature: str,
    quantity: int,
    key: str,
    ttl_seconds: int,
    *,
    api_key_id: str | None = None,
) -> tuple[dict[str, Any], bool]:
    require_metered(services, feature)
    request = {"feature": feature, "quantity": quantity, "ttl_seconds": ttl_seconds}
    async with transaction(services.pool) as conn:
        account = await _open(conn, tenant_id, customer_id, feature)
        earlier = await credits.claim_operation(conn, tenant_id, customer_id, key, "reserve", request)
        if earlier is not None:
            first = _replay(earlier, "reserve", request, key)
            now = await credits.get_reservation(conn, tenant_id, first["reservation_id"])
            assert now is not None
            return reservation_result(now, account), True  # as it is now: it may have been settled since
        _require(account, quantity)
        reservation_id = credits.new_reservation_id()
        reservation = await credits.insert_reservation(conn, reservation_id, account, quantity, ttl_seconds)
        for lot_id, take in await credit_moves.draw(conn, account, quantity):
            await credits.change_lot(conn, lot_id, held=take)
            await credits.add_hold(conn, reservation_id, lot_id, take)
        account = await credits.post(
            conn, account, "reserve", reserved=quantity, reservation_id=reservation_id, api_key_id=api_key_id
        )
        result = reservation_result(reservation, account)
        await credits.save_operation_result(conn, tenant_id, customer_id, key, result)
        return result, False


@retry_on_deadlock
async def settle(
    services: Services, tenant_id: str, reservation_id: str, used: int, *, api_key_id: str | None = None
) -> tuple[dict[str, Any], bool]:
    """Charge what the call used; the rest of the hold goes back. Using more than was reserved
    draws the difference from the balance, and is refused if the balance cannot cover it."""
    async with transaction(services.pool) as conn:
        reservation, account = await _locked_reservation(conn, tenant_id, reservation_id)
        if reservation.status == "expired":
            return await _settle_late(conn, reservation, account, used, api_key_id), False
        if reservation.status != "held":
            return _resolved_again(reservation, account, "settled", used), True
        usable = await credit_moves.usable_hold(conn, reservation)  # holds on refunded lots cannot be used
        extra = max(used - usable, 0)
        if extra:
            _require(account, extra, f"settling {used} against a usable hold of {usable}")
            for lot_id, take in await credit_moves.draw(conn, account, extra):
                await credits.change_lot(conn, lot_id, used=take)
        lost = await credit_moves.unhold(conn, account, reservation, used=min(used, usable))
        settled = await credits.resolve_reservation(conn, reservation.id, "settled", used)
        account = await credits.post(
            conn,
            account,
            "settle",
            used=used,
            reserved=-reservation.quantity,
            granted=-lost,
            reservation_id=reservation.id,
            api_key_id=api_key_id,
        )
        return reservation_result(settled, account), False


async def _settle_late(
    conn: asyncpg.Connection, reservation: Reservation, account: Account, used: int, api_key_id: str | None
) -> dict[str, Any]:
    """The call outlived its reservation: what it used is still charged, from the balance, as far as
    the balance goes (never below zero); the shortfall is reported, not hidden."""
    charged = min(used, account.remaining)
    for lot_id, take in await credit_moves.draw(conn, account, charged) if charged else []:
        await credits.change_lot(conn, lot_id, used=take)
    settled = await credits.resolve_reservation(conn, reservation.id, "settled", used)
    note = f"late settle: the reservation had expired; charged {charged} of {used} used"
    account = await credits.post(
        conn, account, "settle", used=charged, reservation_id=reservation.id, note=note, api_key_id=api_key_id
    )
    result = reservation_result(settled, account)
    result["note"] = note + ("" if charged == used else f"; {used - charged} could not be charged (no balance left)")
    return result


@retry_on_deadlock
async def release(
    services: Services, tenant_id: str, reservation_id: str, *, api_key_id: str | None = None
) -> tuple[dict[str, Any], bool]:
    async with transaction(services.pool) as conn:
        reservation, account = await _locked_reservation(conn, tenant_id, reservation_id)
        if reservation.status != "held":
            return _resolved_again(reservation, account, "released", None), True
        lost = await credit_moves.unhold(conn, account, reservation, used=0)
        released = await credits.resolve_reservation(conn, reservation.id, "released", None)
        account = await credits.post(
            conn,
            account,
            "release",
            reserved=-reservation.quantity,
            granted=-lost,
            reservation_id=reservation.id,
            api_key_id=api_key_id,
        )
        return reservation_result(released, account), False


@retry_on_deadlock
async def consume(
    services: Services,
    tenant_id: str,
    customer_id: str,
    feature: str,
    quantity: int,
    key: str,
    *,
    api_key_id: str | None = None,
) -> tuple[dict[str, Any], bool]:
    require_metered(services, feature)
    request = {"feature": feature, "quantity": quantity}
    async with transaction(services.pool) as conn:
        account = await _open(conn, tenant_id, customer_id, feature)
        earlier = await credits.claim_operation(conn, tenant_id, customer_id, key, "consume", request)
        if earlier is not None:
            return _replay(earlier, "consume", request, key), True
        _require(account, quantity)
        for lot_id, take in await credit_moves.draw(conn, account, quantity):
            await credits.change_lot(conn, lot_id, used=take)
        note = f"idempotency_key {key!r}"
        account = await credits.post(conn, account, "consume", used=quantity, note=note, api_key_id=api_key_id)
        result = {"customer_id": customer_id, "feature": feature, "consumed": quantity, **_balance(account)}
        await credits.save_operation_result(conn, tenant_id, customer_id, key, result)
        return result, False


def reservation_result(reservation: Reservation, account: Account) -> dict[str, Any]:
    return {
        "reservation_id": reservation.id,
        "customer_id": reservation.customer_id,
        "feature": reservation.feature,
        "status": reservation.status,
        "quantity": reservation.quantity,
        "used_quantity": reservation.used_quantity,
        "expires_at": reservation.expires_at.isoformat(),
        **_balance(account),
    }


def _balance(account: Account) -> dict[str, Any]:
    return {"balance": asdict(Balance.of(account))}


def require_metered(services: Services, feature: str) -> None:
    if not services.catalog.is_metered(feature):
        metered = sorted({g.feature for p in services.catalog for g in p.grants if g.metered}) or ["none"]
        shown = feature if len(feature) <= 64 else feature[:64] + "…"
        raise InvalidRequest(f"{shown!r} is not sold as credits here; metered features: {', '.join(metered)}.")


async def _open(conn: asyncpg.Connection, tenant_id: str, customer_id: str, feature: str) -> Account:
    return await credit_moves.expire_due(conn, await credits.lock_account(conn, tenant_id, customer_id, feature))


async def _locked_reservation(
    conn: asyncpg.Connection, tenant_id: str, reservation_id: str
) -> tuple[Reservation, Account]:
    """Account first, then the reservation: the lock order every credit operation uses. Another
    tenant's reservation is not found, with the same message as an id that never existed."""
    found = await credits.get_reservation(conn, tenant_id, reservation_id)
    if found is None:
        raise ReservationNotFound(
            f"No reservation {reservation_id!r}. Use the reservation_id reserve_credits returned."
        )
    account = await _open(conn, tenant_id, found.customer_id, found.feature)
    reservation = await credits.get_reservation(conn, tenant_id, reservation_id, lock=True)
    assert reservation is not None
    return reservation, account


def _require(account: Account, quantity: int, doing: str | None = None) -> None:
    if account.remaining < quantity:
        what = doing or f"{quantity} asked"
        raise InsufficientCredits(
            f"Not enough {account.feature} for customer {account.customer_id!r}: {account.remaining} remaining "
            f"({account.reserved} reserved), {what}. Offer the customer a top-up (check_entitlement lists the "
            "products) and charge it with create_charge."
        )


def _resolved_again(reservation: Reservation, account: Account, wanted: str, used: int | None) -> dict[str, Any]:
    """A second settle or release: the same answer again if it is the same request, else a clear refusal."""
    if reservation.status == wanted and (wanted != "settled" or reservation.used_quantity == used):
        return reservation_result(reservation, account)
    if reservation.status == "expired":  # only release gets here (a late settle charges): it released itself
        return reservation_result(reservation, account)
    detail = f" with used_quantity {reservation.used_quantity}" if reservation.status == "settled" else ""
    raise NotAllowedNow(f"Reservation {reservation.id} was already {reservation.status}{detail}; it resolves once.")


def _replay(earlier: asyncpg.Record, kind: str, request: dict[str, Any], key: str) -> dict[str, Any]:
    if earlier["kind"] != kind or earlier["request"] != request:
        raise IdempotencyKeyReused(
            f"idempotency_key {key!r} was already used for a different credit operation "
            f"({earlier['kind']} {earlier['request']}). Use a new key for a new operation."
        )
    return earlier["result"]
