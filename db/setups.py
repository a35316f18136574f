"""Payment setups: a person saving a card, recorded before the provider is asked, then what became of it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg


class SetupStatus(StrEnum):
    CREATED = "created"
    """Recorded; the provider has not answered yet."""
    REQUIRES_ACTION = "requires_action"
    """The person must save a card at setup_url."""
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"
    """The page expired, or was closed, with no card saved."""
    FAILED = "failed"


@dataclass(frozen=True, kw_only=True)
class Setup:
    id: str
    tenant_id: str
    customer_id: str
    idempotency_key: str
    provider: str
    api_key_id: str | None
    status: SetupStatus
    provider_setup_id: str | None
    setup_url: str | None
    provider_payment_method_id: str | None
    failure_reason: str | None
    submit_lease_until: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Setup:
        fields = dict(row)
        return cls(**{**fields, "status": SetupStatus(fields["status"])})


def new_setup_id() -> str:
    return "set_" + secrets.token_hex(12)


async def claim(
    connection: asyncpg.Connection,
    *,
    setup_id: str,
    tenant_id: str,
    customer_id: str,
    idempotency_key: str,
    provider: str,
    api_key_id: str | None,
    lease_seconds: float,
) -> Setup | None:
    """The new setup (`created`, its lease ours), or None when this key was used before for this customer."""
    row = await connection.fetchrow(
        """
        INSERT INTO payment_setups (id, tenant_id, customer_id, idempotency_key, provider, api_key_id,
                                    submit_lease_until)
        VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
        ON CONFLICT (tenant_id, customer_id, idempotency_key) DO NOTHING
        RETURNING *
        """,
        setup_id,
        tenant_id,
        customer_id,
        idempotency_key,
        provider,
        api_key_id,
        lease_seconds,
    )
    return Setup.from_row(row) if row else None


async def by_key(connection: asyncpg.Connection, tenant_id: str, customer_id: str, idempotency_key: str) -> Setup:
    row = await connection.fetchrow(
        "SELECT * FROM payment_setups WHERE tenant_id = $1 AND customer_id = $2 AND idempotency_key = $3",
        tenant_id,
        customer_id,
        idempotency_key,
    )
    assert row is not None  # only asked after a claim lost to it
    return Setup.from_row(row)


async def take_lease(connection: asyncpg.Connection, setup_id: str, lease_seconds: float) -> Setup | None:
    """The setup, if it is `created` and nobody holds a live lease on it; the lease is now ours."""
    row = await connection.fetchrow(
        """
        UPDATE payment_setups SET submit_lease_until = now() + make_interval(secs => $2)
         WHERE id = $1 AND status = 'created' AND (submit_lease_until IS NULL OR submit_lease_until < now())
        RETURNING *
        """,
        setup_id,
        lease_seconds,
    )
    return Setup.from_row(row) if row else None


async def release_lease(connection: asyncpg.Connection, setup_id: str, held_until: datetime | None) -> None:
    await connection.execute(
        "UPDATE payment_setups SET submit_lease_until = NULL WHERE id = $1 AND submit_lease_until = $2",
        setup_id,
        held_until,
    )


async def lock(connection: asyncpg.Connection, setup_id: str, *, tenant_id: str | None) -> Setup | None:
    row = await connection.fetchrow(
        "SELECT * FROM payment_setups WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2) FOR UPDATE",
        setup_id,
        tenant_id,
    )
    return Setup.from_row(row) if row else None


async def lock_by_provider_id(
    connection: asyncpg.Connection, provider: str, provider_setup_id: str, *, tenant_id: str | None
) -> Setup | None:
    row = await connection.fetchrow(
        """
        SELECT * FROM payment_setups WHERE provider = $1 AND provider_setup_id = $2
           AND ($3::text IS NULL OR tenant_id = $3)
           FOR UPDATE
        """,
        provider,
        provider_setup_id,
        tenant_id,
    )
    return Setup.from_row(row) if row else None


async def update(
    connection: asyncpg.Connection,
    setup_id: str,
    status: SetupStatus,
    *,
    provider_setup_id: str | None = None,
    setup_url: str | None = None,
    provider_payment_method_id: str | None = None,
    failure_reason: str | None = None,
) -> Setup:
    row = await connection.fetchrow(
        """
        UPDATE payment_setups
           SET status = $2,
               provider_setup_id = coalesce(provider_setup_id, $3),
               setup_url = CASE WHEN $2 = 'requires_action' THEN coalesce($4, setup_url) END,
               provider_payment_method_id = coalesce($5, provider_payment_method_id),
               failure_reason = $6,
               submit_lease_until = NULL,
               updated_at = now()
         WHERE id = $1
        RETURNING *
        """,
        setup_id,
        status,
        provider_setup_id,
        setup_url,
        provider_payment_method_id,
        failure_reason,
    )
    return Setup.from_row(row)


async def attach_provider_id(connection: asyncpg.Connection, setup_id: str, provider_setup_id: str) -> None:
    await connection.execute(
        "UPDATE payment_setups SET provider_setup_id = $2 WHERE id = $1 AND provider_setup_id IS NULL",
        setup_id,
        provider_setup_id,
    )


async def latest_of_customer(
    connection: asyncpg.Connection, tenant_id: str, customer_id: str, limit: int
) -> list[Setup]:
    rows = await connection.fetch(
        """
        SELECT * FROM payment_setups WHERE tenant_id = $1 AND customer_id = $2
         ORDER BY created_at DESC, id DESC LIMIT $3
        """,
        tenant_id,
        customer_id,
        limit,
    )
    return [Setup.from_row(row) for row in rows]
