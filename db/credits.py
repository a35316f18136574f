"""Credits: accounts that the database refuses to overdraw, lots, reservations, and the ledger.

An account is one (tenant, customer, feature): every query on accounts, lots, reservations,
operations and the ledger names the tenant, so two tenants' customers of the same id never meet.

Every change to an account goes through `post`, which updates the account and appends the
ledger entry in one statement pair, so the account always equals the sum of its ledger. Callers
hold `lock_account` for the rest of their transaction: lots, holds and reservations of one
account change under that lock only.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Account:
    tenant_id: str
    customer_id: str
    feature: str
    granted: int
    used: int
    reserved: int

    @property
    def remaining(self) -> int:
        return self.granted - self.used - self.reserved


@dataclass(frozen=True)
class Lot:
    id: int
    tenant_id: str
    customer_id: str
    feature: str
    quantity: int
    used: int
    held: int
    written_off: int
    expires_at: datetime | None
    closed_at: datetime | None
    revoked_at: datetime | None

    @property
    def free(self) -> int:
        return self.quantity - self.used - self.held - self.written_off


@dataclass(frozen=True)
class Reservation:
    id: str
    tenant_id: str
    customer_id: str
    feature: str
    quantity: int
    status: str
    used_quantity: int | None
    expires_at: datetime
    created_at: datetime
    resolved_at: datetime | None


def new_reservation_id() -> str:
    return "rsv_" + secrets.token_hex(12)


_ACCOUNT_COLUMNS = "tenant_id, customer_id, feature, granted, used, reserved"


async def lock_account(conn: asyncpg.Connection, tenant_id: str, customer_id: str, feature: str) -> Account:
    await conn.execute(
        "INSERT INTO credit_accounts (tenant_id, customer_id, feature) VALUES ($1, $2, $3)"
        " ON CONFLICT (tenant_id, customer_id, feature) DO NOTHING",
        tenant_id,
        customer_id,
        feature,
    )
    row = await conn.fetchrow(
        f"SELECT {_ACCOUNT_COLUMNS} FROM credit_accounts"
        " WHERE tenant_id = $1 AND customer_id = $2 AND feature = $3 FOR UPDATE",
        tenant_id,
        customer_id,
        feature,
    )
    return Account(**dict(row))


async def get_account(conn: asyncpg.Connection, tenant_id: str, customer_id: str, feature: str) -> Account | None:
    row = await conn.fetchrow(
        f"SELECT {_ACCOUNT_COLUMNS} FROM credit_accounts WHERE tenant_id = $1 AND customer_id = $2 AND feature = $3",
        tenant_id,
        customer_id,
        feature,
    )
    return Account(**dict(row)) if row else None


async def post(
    conn: asyncpg.Connection,
    account: Account,
    kind: str,
    *,
    granted: int = 0,
    used: int = 0,
    reserved: int = 0,
    lot_id: int | None = None,
    reservation_id: str | None = None,
    payment_id: str | None = None,
    note: str | None = None,
    api_key_id: str | None = None,
) -> Account:
    """Change the account and append the matching ledger entry; the CHECK refuses any overdraw.
    `api_key_id`: the key an agent acted with, recorded on the entry."""
    row = await conn.fetchrow(
        f"""
        UPDATE credit_accounts
           SET granted = granted + $4, used = used + $5, reserved = reserved + $6, updated_at = now()
         WHERE tenant_id = $1 AND customer_id = $2 AND feature = $3
        RETURNING {_ACCOUNT_COLUMNS}
        """,
        account.tenant_id,
        account.customer_id,
        account.feature,
        granted,
        used,
        reserved,
    )
    await conn.execute(
        """
        INSERT INTO credit_ledger (tenant_id, customer_id, feature, kind, granted_delta, used_delta, reserved_delta,
                                   lot_id, reservation_id, payment_id, note, api_key_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        """,
        account.tenant_id,
        account.customer_id,
        account.feature,
        kind,
        granted,
        used,
        reserved,
        lot_id,
        reservation_id,
        payment_id,
        note,
        api_key_id,
    )
    return Account(**dict(row))


async def insert_lot(
    conn: asyncpg.Connection,
    account: Account,
    payment_id: str,
    quantity: int,
    days: int | None,
    *,
    until: str | None = None,
) -> int | None:
    """The new lot's id, or None when this payment already granted this feature. It expires after `days`,
    or at `until` (a subscription period's end, ISO 8601)."""
    return await conn.fetchval(
        """
        INSERT INTO credit_lots (tenant_id, customer_id, feature, payment_id, quantity, expires_at)
        VALUES ($1, $2, $3, $4, $5, coalesce($7::text::timestamptz, now() + make_interval(days => $6)))
        ON CONFLICT (tenant_id, payment_id, feature) DO NOTHING
        RETURNING id
        """,
        account.tenant_id,
        account.customer_id,
        account.feature,
        payment_id,
        quantity,
        days,
        until,
    )


_LOT_COLUMNS = (
    "id, tenant_id, customer_id, feature, quantity, used, held, written_off, expires_at, closed_at, revoked_at"
)


async def drawable_lots(conn: asyncpg.Connection, account: Account) -> list[Lot]:
    """Open lots with something free, the one that expires first first."""
    rows = await conn.fetch(
        f"""
        SELECT {_LOT_COLUMNS} FROM credit_lots
         WHERE tenant_id = $1 AND customer_id = $2 AND feature = $3 AND closed_at IS NULL
           AND quantity - used - held - written_off > 0
         ORDER BY expires_at NULLS LAST, id
        """,
        account.tenant_id,
        account.customer_id,
        account.feature,
    )
    return [Lot(**dict(row)) for row in rows]


async def lots_due_to_expire(conn: asyncpg.Connection, account: Account) -> list[Lot]:
    rows = await conn.fetch(
        f"""
        SELECT {_LOT_COLUMNS} FROM credit_lots
         WHERE tenant_id = $1 AND customer_id = $2 AND feature = $3 AND closed_at IS NULL AND expires_at <= now()
        """,
        account.tenant_id,
        account.customer_id,
        account.feature,
    )
    return [Lot(**dict(row)) for row in rows]


async def lots_of_payment(conn: asyncpg.Connection, payment_id: str) -> list[Lot]:
    """By payment id alone: payment ids are unique across tenants, and each lot names its account."""
    rows = await conn.fetch(
        f"SELECT {_LOT_COLUMNS} FROM credit_lots WHERE payment_id = $1 ORDER BY feature", payment_id
    )
    return [Lot(**dict(row)) for row in rows]


async def open_lots_of_subscription(
    conn: asyncpg.Connection, tenant_id: str, subscription_id: str, ended_by: str
) -> list[Lot]:
    """The subscription's lots still open whose period ended by `ended_by` (ISO 8601, the provider's time)."""
    rows = await conn.fetch(
        f"""
        SELECT {_LOT_COLUMNS} FROM credit_lots
         WHERE tenant_id = $1 AND closed_at IS NULL AND expires_at <= $3::text::timestamptz
           AND payment_id IN (SELECT id FROM payments WHERE tenant_id = $1 AND subscription_id = $2)
         ORDER BY feature, id
        """,
        tenant_id,
        subscription_id,
        ended_by,
    )
    return [Lot(**dict(row)) for row in rows]


async def get_lot(conn: asyncpg.Connection, lot_id: int) -> Lot:
    return Lot(**dict(await conn.fetchrow(f"SELECT {_LOT_COLUMNS} FROM credit_lots WHERE id = $1", lot_id)))


async def change_lot(
    conn: asyncpg.Connection,
    lot_id: int,
    *,
    used: int = 0,
    held: int = 0,
    written_off: int = 0,
    close: bool = False,
    revoke: bool = False,
) -> None:
    await conn.execute(
        """
        UPDATE credit_lots
           SET used = used + $2, held = held + $3, written_off = written_off + $4,
               closed_at = CASE WHEN $5 OR $6 THEN coalesce(closed_at, now()) ELSE closed_at END,
               revoked_at = CASE WHEN $6 THEN coalesce(revoked_at, now()) ELSE revoked_at END
         WHERE id = $1
        """,
        lot_id,
        used,
        held,
        written_off,
        close,
        revoke,
    )


async def earliest_expiry(conn: asyncpg.Connection, account: Account) -> datetime | None:
    return await conn.fetchval(
        """
        SELECT min(expires_at) FROM credit_lots
         WHERE tenant_id = $1 AND customer_id = $2 AND feature = $3 AND closed_at IS NULL
           AND quantity - used - written_off > 0
        """,
        account.tenant_id,
        account.customer_id,
        account.feature,
    )


_RESERVATION_COLUMNS = (
    "id, tenant_id, customer_id, feature, quantity, status, used_quantity, expires_at, created_at, resolved_at"
)


async def insert_reservation(
    conn: asyncpg.Connection, reservation_id: str, account: Account, quantity: int, ttl_seconds: int
) -> Reservation:
    row = await conn.fetchrow(
        f"""
        INSERT INTO credit_reservations (id, tenant_id, customer_id, feature, quantity, expires_at)
        VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
        RETURNING {_RESERVATION_COLUMNS}
        """,
        reservation_id,
        account.tenant_id,
        account.customer_id,
        account.feature,
        quantity,
        float(ttl_seconds),
    )
    return Reservation(**dict(row))


async def get_reservation(
    conn: asyncpg.Connection, tenant_id: str, reservation_id: str, *, lock: bool = False
) -> Reservation | None:
    """None also for another tenant's reservation: to a caller it does not exist."""
    suffix = " FOR UPDATE" if lock else ""
    row = await conn.fetchrow(
        f"SELECT {_RESERVATION_COLUMNS} FROM credit_reservations WHERE tenant_id = $1 AND id = $2{suffix}",
        tenant_id,
        reservation_id,
    )
    return Reservation(**dict(row)) if row else None


async def reservations_due(conn: asyncpg.Connection, account: Account) -> list[Reservation]:
    rows = await conn.fetch(
        f"""
        SELECT {_RESERVATION_COLUMNS} FROM credit_reservations
         WHERE tenant_id = $1 AND customer_id = $2 AND feature = $3 AND status = 'held' AND expires_at <= now()
        """,
        account.tenant_id,
        account.customer_id,
        account.feature,
    )
    return [Reservation(**dict(row)) for row in rows]


async def resolve_reservation(
    conn: asyncpg.Connection, reservation_id: str, status: str, used_quantity: int | None
) -> Reservation:
    row = await conn.fetchrow(
        f"""
        UPDATE credit_reservations SET status = $2, used_quantity = $3, resolved_at = now()
         WHERE id = $1 RETURNING {_RESERVATION_COLUMNS}
        """,
        reservation_id,
        status,
        used_quantity,
    )
    return Reservation(**dict(row))


async def add_hold(conn: asyncpg.Connection, account: Account, reservation_id: str, lot_id: int, quantity: int) -> None:
    await conn.execute(
        "INSERT INTO credit_holds (tenant_id, reservation_id, lot_id, quantity) VALUES ($4, $1, $2, $3)",
        reservation_id,
        lot_id,
        quantity,
        account.tenant_id,
    )


async def holds(conn: asyncpg.Connection, reservation_id: str) -> list[tuple[int, int, bool]]:
    """(lot id, quantity, lot revoked) held by the reservation, in the order they were drawn."""
    rows = await conn.fetch(
        """
        SELECT h.lot_id, h.quantity, l.revoked_at IS NOT NULL AS revoked
          FROM credit_holds h JOIN credit_lots l ON l.id = h.lot_id
         WHERE h.reservation_id = $1 ORDER BY l.expires_at NULLS LAST, l.id
        """,
        reservation_id,
    )
    return [(row["lot_id"], row["quantity"], row["revoked"]) for row in rows]


async def claim_operation(
    conn: asyncpg.Connection, tenant_id: str, customer_id: str, key: str, kind: str, request: dict[str, Any]
) -> asyncpg.Record | None:
    """None when this call took the key (its result is saved later in the same transaction);
    otherwise the earlier operation's kind, request and result."""
    taken = await conn.fetchval(
        """
        INSERT INTO credit_operations (tenant_id, customer_id, idempotency_key, kind, request, result)
        VALUES ($1, $2, $3, $4, $5, '{}'::jsonb)
        ON CONFLICT (tenant_id, customer_id, idempotency_key) DO NOTHING RETURNING true
        """,
        tenant_id,
        customer_id,
        key,
        kind,
        request,
    )
    if taken:
        return None
    return await conn.fetchrow(
        "SELECT kind, request, result FROM credit_operations"
        " WHERE tenant_id = $1 AND customer_id = $2 AND idempotency_key = $3",
        tenant_id,
        customer_id,
        key,
    )


async def save_operation_result(
    conn: asyncpg.Connection, tenant_id: str, customer_id: str, key: str, result: dict[str, Any]
) -> None:
    await conn.execute(
        "UPDATE credit_operations SET result = $4 WHERE tenant_id = $1 AND customer_id = $2 AND idempotency_key = $3",
        tenant_id,
        customer_id,
        key,
        result,
    )


async def draw(conn: asyncpg.Connection, account: Account, quantity: int, *, hold: bool) -> list[tuple[int, int]]:
    """(lot id, quantity) taken from the open lots that expire first, used or held (draw_credits in
    0014); fewer than asked when the lots hold less. The caller holds the account's lock."""
    rows = await conn.fetch(
        "SELECT lot_id, taken FROM draw_credits($1, $2, $3, $4, $5)",
        account.tenant_id,
        account.customer_id,
        account.feature,
        quantity,
        hold,
    )
    return [(row["lot_id"], row["taken"]) for row in rows]


@dataclass(frozen=True)
class Consumed:
    """What consume_credits (0014, 0118) did: outcome consumed, replay, insufficient, time_to_act or
    needs_low_balance_event (nothing done: run it again with the event, below)."""

    outcome: str
    account: Account | None
    """The account after a consume, as it is otherwise; for a replay the balance after the first consume."""
    earlier_kind: str | None
    earlier_request: dict[str, Any] | None
    earlier_result: dict[str, Any] | None


async def consume(
    conn: asyncpg.Connection | asyncpg.Pool,
    tenant_id: str,
    customer_id: str,
    feature: str,
    quantity: int,
    key: str,
    *,
    request: dict[str, Any],
    note: str,
    api_key_id: str | None,
    low_threshold: int | None,
    low_event: dict[str, Any] | None,
    retry_for_seconds: float,
) -> Consumed:
    """One statement, so on a pool its own transaction: the account stays locked only while PostgreSQL
    works. `low_event`: the credits.low_balance event to record when the balance goes below `low_threshold`;
    without it such a consume does nothing and answers needs_low_balance_event."""
    row = await conn.fetchrow(
        "SELECT * FROM consume_credits($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        tenant_id,
        customer_id,
        feature,
        quantity,
        key,
        request,
        note,
        api_key_id,
        low_threshold,
        low_event,
        retry_for_seconds,
    )
    account = None
    if row["granted"] is not None:
        account = Account(tenant_id, customer_id, feature, row["granted"], row["used"], row["reserved"])
    return Consumed(row["outcome"], account, row["earlier_kind"], row["earlier_request"], row["earlier_result"])


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    feature: str
    kind: str
    granted_delta: int
    used_delta: int
    reserved_delta: int
    payment_id: str | None
    reservation_id: str | None
    note: str | None
    api_key_id: str | None
    created_at: datetime


async def accounts_of(conn: asyncpg.Connection, tenant_id: str, customer_id: str) -> list[Account]:
    rows = await conn.fetch(
        f"SELECT {_ACCOUNT_COLUMNS} FROM credit_accounts WHERE tenant_id = $1 AND customer_id = $2 ORDER BY feature",
        tenant_id,
        customer_id,
    )
    return [Account(**dict(row)) for row in rows]


async def ledger_of(conn: asyncpg.Connection, tenant_id: str, customer_id: str, limit: int) -> list[LedgerEntry]:
    """The customer's newest ledger entries, every feature."""
    rows = await conn.fetch(
        """
        SELECT id, feature, kind, granted_delta, used_delta, reserved_delta, payment_id, reservation_id, note,
               api_key_id, created_at
          FROM credit_ledger WHERE tenant_id = $1 AND customer_id = $2 ORDER BY id DESC LIMIT $3
        """,
        tenant_id,
        customer_id,
        limit,
    )
    return [LedgerEntry(**dict(row)) for row in rows]
