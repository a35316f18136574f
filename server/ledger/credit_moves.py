"""How credits move between lots, holds and the account, always under the account's lock.

grant     a succeeded payment's lot: granted +q
use/hold  take q from the lots that expire first, spent or held for a reservation (consume does both
          in one statement in the database: consume_credits, migration 0014)
close     a reservation settles, is released or expires: its holds become used, or go back
          (written off if their lot has closed)
expire    time: due reservations are closed, due lots lose what is still free
revoke    a fully refunded payment's lot loses what is still free; what was spent stays spent

A payment's credits belong to the payment's tenant; a lot found by payment id names its own account.
"""

from __future__ import annotations

import asyncpg

from db import credits
from db.credits import Account, Lot, Reservation
from db.payments import Payment
from server.errors import InsufficientCredits

LEDGER_KIND = {"settled": "settle", "released": "release", "expired": "expire"}
"""The credit-ledger entry each way of closing a reservation writes."""


async def grant_for_payment(conn: asyncpg.Connection, payment: Payment) -> None:
    for grant in sorted(payment.grants, key=lambda grant: grant["feature"]):
        if not grant.get("credits"):
            continue
        account = await credits.lock_account(conn, payment.tenant_id, payment.customer_id, grant["feature"])
        lot_id = await credits.insert_lot(
            conn, account, payment.id, int(grant["credits"]), grant.get("days"), until=grant.get("period_end")
        )
        if lot_id is not None:
            await credits.post(
                conn, account, "grant", granted=int(grant["credits"]), lot_id=lot_id, payment_id=payment.id
            )


async def revoke_for_payment(conn: asyncpg.Connection, payment: Payment) -> None:
    """A full refund: every unspent credit of the payment goes, held ones when their hold resolves."""
    for lot in await credits.lots_of_payment(conn, payment.id):
        account = await _lock_account_of(conn, lot)
        lot = await credits.get_lot(conn, lot.id)
        if lot.revoked_at is not None:
            continue
        await credits.change_lot(conn, lot.id, written_off=lot.free, revoke=True)
        if lot.free:
            note = "refunded payment: its unspent credits are revoked"
            await credits.post(
                conn, account, "revoke", granted=-lot.free, lot_id=lot.id, payment_id=payment.id, note=note
            )


async def revoke_share(conn: asyncpg.Connection, payment: Payment, refunded_minor: int) -> None:
    """A partial refund: the same share of each lot's credits goes, from what is still free."""
    for lot in await credits.lots_of_payment(conn, payment.id):
        account = await _lock_account_of(conn, lot)
        lot = await credits.get_lot(conn, lot.id)
        share = -(-lot.quantity * refunded_minor // payment.amount_minor)  # rounded up: never give back less
        take = min(share, lot.free)
        if take and lot.revoked_at is None:
            await credits.change_lot(conn, lot.id, written_off=take)
            note = f"partial refund of {refunded_minor} minor units: that share of the credits is revoked"
            await credits.post(conn, account, "revoke", granted=-take, lot_id=lot.id, payment_id=payment.id, note=note)


async def expire_subscription_lots(
    conn: asyncpg.Connection, tenant_id: str, subscription_id: str, ended_by: str
) -> None:
    """A new period began at the provider: the allowances of the periods that ended by then expire, even when
    the provider's clock runs ahead of ours (the sandbox's test clock)."""
    note = "the subscription's period ended: its allowance expired unspent"
    await _expire_lots(conn, await credits.open_lots_of_subscription(conn, tenant_id, subscription_id, ended_by), note)


async def end_subscription_lots(conn: asyncpg.Connection, tenant_id: str, subscription_id: str) -> None:
    """The subscription ended (canceled or unpaid): every allowance it still has expires now, as at a period's
    end (held credits are written off when their reservation closes)."""
    lots = await credits.open_lots_of_subscription(conn, tenant_id, subscription_id, ended_by="infinity")
    await _expire_lots(conn, lots, "the subscription ended: its allowance expired unspent")


async def _expire_lots(conn: asyncpg.Connection, lots: list[Lot], note: str) -> None:
    for lot in lots:
        account = await _lock_account_of(conn, lot)
        lot = await credits.get_lot(conn, lot.id)
        if lot.closed_at is not None:
            continue
        await credits.change_lot(conn, lot.id, written_off=lot.free, close=True)
        if lot.free:
            await credits.post(conn, account, "expire", granted=-lot.free, lot_id=lot.id, note=note)


async def _lock_account_of(conn: asyncpg.Connection, lot: Lot) -> Account:
    return await credits.lock_account(conn, lot.tenant_id, lot.customer_id, lot.feature)


async def use(conn: asyncpg.Connection, account: Account, quantity: int) -> None:
    """Spend `quantity` from the lots that expire first (the account is posted by the caller)."""
    await _draw(conn, account, quantity, hold=False)


async def hold(conn: asyncpg.Connection, account: Account, reservation_id: str, quantity: int) -> None:
    """Hold `quantity` for a reservation, from the lots that expire first."""
    for lot_id, take in await _draw(conn, account, quantity, hold=True):
        await credits.add_hold(conn, account, reservation_id, lot_id, take)


async def _draw(conn: asyncpg.Connection, account: Account, quantity: int, *, hold: bool) -> list[tuple[int, int]]:
    """(lot id, quantity) covering `quantity`, from the lots that expire first (draw_credits in the
    database, which consume_credits uses too)."""
    taken = await credits.draw(conn, account, quantity, hold=hold)
    if sum(take for _, take in taken) < quantity:
        raise InsufficientCredits(f"The lots of {account.feature} hold fewer than {quantity} free credits.")
    return taken


async def usable_hold(conn: asyncpg.Connection, reservation: Reservation) -> int:
    """What of the reservation may still be used: holds on refunded lots may not."""
    return sum(held for _, held, revoked in await credits.holds(conn, reservation.id) if not revoked)


async def close(
    conn: asyncpg.Connection,
    account: Account,
    reservation: Reservation,
    outcome: str,
    *,
    used: int = 0,
    from_hold: int = 0,
    note: str | None = None,
    api_key_id: str | None = None,
) -> tuple[Reservation, Account]:
    """Close a held reservation as `outcome` (settled, released, expired): `from_hold` of its holds become
    used and the rest goes back; the account and its ledger record `used` (more than the hold only when
    the caller drew the difference first)."""
    lost = await _unhold(conn, reservation, used=from_hold)
    closed = await credits.resolve_reservation(conn, reservation.id, outcome, used if outcome == "settled" else None)
    account = await credits.post(
        conn,
        account,
        LEDGER_KIND[outcome],
        used=used,
        reserved=-reservation.quantity,
        granted=-lost,
        reservation_id=reservation.id,
        note=note,
        api_key_id=api_key_id,
    )
    return closed, account


async def _unhold(conn: asyncpg.Connection, reservation: Reservation, used: int) -> int:
    """Turn up to `used` of the reservation's holds into use and let the rest go; returns how much of
    what was let go fell on closed (expired or revoked) lots and so is written off, not returned.
    Holds on revoked (refunded) lots are never used."""
    written_off = 0
    for lot_id, held, revoked in await credits.holds(conn, reservation.id):
        if revoked:
            await credits.change_lot(conn, lot_id, held=-held, written_off=held)
            written_off += held
            continue
        spent = min(held, used)
        used -= spent
        back = held - spent
        lot = await credits.get_lot(conn, lot_id)
        lost = back if lot.closed_at is not None else 0
        await credits.change_lot(conn, lot_id, used=spent, held=-held, written_off=lost)
        written_off += lost
    return written_off


async def expire_due(conn: asyncpg.Connection, account: Account) -> Account:
    """Let time act: due reservations go back, due lots lose what is still free."""
    for reservation in await credits.reservations_due(conn, account):
        note = "reservation expired: its credits went back"
        _, account = await close(conn, account, reservation, "expired", note=note)
    for lot in await credits.lots_due_to_expire(conn, account):
        await credits.change_lot(conn, lot.id, written_off=lot.free, close=True)
        if lot.free:
            account = await credits.post(
                conn, account, "expire", granted=-lot.free, lot_id=lot.id, note="lot expired unspent"
            )
    return account
