"""The outbox: events about changes (written in the transaction of the change), the tenants' webhook
endpoints, one delivery per (event, endpoint), and every attempt at it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    id: str
    tenant_id: str
    url: str
    event_types: list[str]
    status: str
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None
    failures_in_a_row: int
    failing_since: datetime | None
    created_at: datetime
    removed_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Endpoint:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, kw_only=True)
class Delivery:
    id: int
    event_id: str
    event_type: str
    endpoint_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Delivery:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, kw_only=True)
class Attempt:
    delivery_id: int
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response_prefix: str | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Attempt:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, kw_only=True)
class ClaimedDelivery:
    """A delivery claimed for sending: what to send, where, signed with which secrets."""

    id: int
    attempts: int
    give_up_after: datetime
    event_id: str
    payload: dict[str, Any]
    endpoint_id: str
    url: str
    secrets: list[str]


async def insert_events(
    conn: asyncpg.Connection, tenant_id: str, payloads: list[dict[str, Any]], *, retry_for_seconds: float
) -> None:
    """Store the events, in order, and one delivery for each of the tenant's endpoints that wants each, in
    the caller's transaction (record_outbox_event, migration 0014), in one statement."""
    if not payloads:
        return
    await conn.execute(
        """
        SELECT record_outbox_event(e ->> 'id', $1, e ->> 'type', e, $3)
          FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS events (e, n) ORDER BY n
        """,
        tenant_id,
        payloads,
        retry_for_seconds,
    )


async def get_event(conn: asyncpg.Connection, event_id: str, *, tenant_id: str | None) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM outbox_events WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)", event_id, tenant_id
    )


async def events_of_tenant(conn: asyncpg.Connection, tenant_id: str, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM outbox_events WHERE tenant_id = $1 ORDER BY seq DESC LIMIT $2", tenant_id, limit
    )


async def insert_endpoint(
    conn: asyncpg.Connection, *, endpoint_id: str, tenant_id: str, url: str, event_types: list[str], secret: str
) -> Endpoint:
    row = await conn.fetchrow(
        """
        INSERT INTO webhook_endpoints (id, tenant_id, url, event_types, secret) VALUES ($1, $2, $3, $4, $5)
        RETURNING *
        """,
        endpoint_id,
        tenant_id,
        url,
        event_types,
        secret,
    )
    return Endpoint.from_row(row)


async def endpoints(conn: asyncpg.Connection, tenant_id: str | None) -> list[Endpoint]:
    rows = await conn.fetch(
        """
        SELECT * FROM webhook_endpoints
         WHERE removed_at IS NULL AND ($1::text IS NULL OR tenant_id = $1) ORDER BY tenant_id, created_at, id
        """,
        tenant_id,
    )
    return [Endpoint.from_row(row) for row in rows]


async def get_endpoint(conn: asyncpg.Connection, endpoint_id: str, *, tenant_id: str | None) -> Endpoint | None:
    row = await conn.fetchrow(
        """
        SELECT * FROM webhook_endpoints
         WHERE id = $1 AND removed_at IS NULL AND ($2::text IS NULL OR tenant_id = $2) FOR UPDATE
        """,
        endpoint_id,
        tenant_id,
    )
    return Endpoint.from_row(row) if row else None


async def remove_endpoint(conn: asyncpg.Connection, endpoint_id: str) -> Endpoint:
    row = await conn.fetchrow("UPDATE webhook_endpoints SET removed_at = now() WHERE id = $1 RETURNING *", endpoint_id)
    return Endpoint.from_row(row)


async def rotate_secret(
    conn: asyncpg.Connection, endpoint_id: str, new_secret: str, overlap_seconds: float
) -> Endpoint:
    """The new secret signs from now on; the current one keeps signing beside it for the overlap."""
    row = await conn.fetchrow(
        """
        UPDATE webhook_endpoints
           SET previous_secret = secret, secret = $2,
               previous_secret_until = now() + make_interval(secs => $3)
         WHERE id = $1 RETURNING *
        """,
        endpoint_id,
        new_secret,
        overlap_seconds,
    )
    return Endpoint.from_row(row)


async def set_status(conn: asyncpg.Connection, endpoint_id: str, status: str) -> Endpoint:
    row = await conn.fetchrow("UPDATE webhook_endpoints SET status = $2 WHERE id = $1 RETURNING *", endpoint_id, status)
    return Endpoint.from_row(row)


async def resume_deliveries(conn: asyncpg.Connection, endpoint_id: str, retry_for_seconds: float) -> int:
    """Re-enabled: its streak is forgotten and what waits for it is due now, with a fresh retry window."""
    await conn.execute(
        "UPDATE webhook_endpoints SET failures_in_a_row = 0, failing_since = NULL WHERE id = $1", endpoint_id
    )
    resumed = await conn.execute(
        """
        UPDATE webhook_deliveries SET next_attempt_at = now(), give_up_after = now() + make_interval(secs => $2)
         WHERE endpoint_id = $1 AND status = 'pending'
        """,
        endpoint_id,
        retry_for_seconds,
    )
    return int(resumed.split()[-1])


async def claim_due(conn: asyncpg.Connection, limit: int, claim_seconds: float) -> list[ClaimedDelivery]:
    """Pending deliveries to enabled endpoints whose time has come, oldest first, claimed for `claim_seconds`.

    The claim is a later next_attempt_at, committed before anything is sent: other processes skip
    these rows (SKIP LOCKED while claiming, the later time after), no lock is held while sending, and
    a claim whose process died comes due again.
    """
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
             WHERE d.status = 'pending' AND d.next_attempt_at <= now()
               AND e.status = 'enabled' AND e.removed_at IS NULL
             ORDER BY d.next_attempt_at, d.id LIMIT $1
               FOR UPDATE OF d SKIP LOCKED
        )
        UPDATE webhook_deliveries d SET next_attempt_at = now() + make_interval(secs => $2)
          FROM due, outbox_events ev, webhook_endpoints e
         WHERE d.id = due.id AND ev.id = d.event_id AND e.id = d.endpoint_id
        RETURNING d.id, d.attempts, d.give_up_after, ev.id AS event_id, ev.payload, e.id AS endpoint_id, e.url,
                  e.secret, CASE WHEN e.previous_secret_until > now() THEN e.previous_secret END AS previous_secret
        """,
        limit,
        claim_seconds,
    )
    return [_claimed(row) for row in rows]


def _claimed(row: asyncpg.Record) -> ClaimedDelivery:
    return ClaimedDelivery(
        id=row["id"],
        attempts=row["attempts"],
        give_up_after=row["give_up_after"],
        event_id=row["event_id"],
        payload=row["payload"],
        endpoint_id=row["endpoint_id"],
        url=row["url"],
        secrets=[secret for secret in (row["secret"], row["previous_secret"]) if secret],
    )


async def record_attempt(
    conn: asyncpg.Connection,
    delivery_id: int,
    *,
    status_code: int | None,
    latency_ms: int,
    error: str | None,
    response_prefix: str | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO webhook_delivery_attempts (tenant_id, delivery_id, status_code, latency_ms, error, response_prefix)
        SELECT tenant_id, $1, $2, $3, $4, $5 FROM webhook_deliveries WHERE id = $1
        """,
        delivery_id,
        status_code,
        latency_ms,
        error,
        response_prefix,
    )


async def mark_delivered(conn: asyncpg.Connection, delivery_id: int, status_code: int) -> None:
    await conn.execute(
        """
        UPDATE webhook_deliveries
           SET status = 'delivered', delivered_at = now(), attempts = attempts + 1, last_attempt_at = now(),
               last_status = $2, last_error = NULL
         WHERE id = $1 AND status = 'pending'
        """,
        delivery_id,
        status_code,
    )


async def mark_failed_attempt(
    conn: asyncpg.Connection, delivery_id: int, *, status_code: int | None, error: str, retry_in_seconds: float | None
) -> None:
    """Count a failed attempt; retry after `retry_in_seconds`, or give up when it is None."""
    await conn.execute(
        """
        UPDATE webhook_deliveries
           SET attempts = attempts + 1, last_attempt_at = now(), last_status = $2, last_error = $3,
               status = CASE WHEN $4::float8 IS NULL THEN 'gave_up' ELSE status END,
               next_attempt_at = CASE WHEN $4::float8 IS NULL THEN next_attempt_at
                                      ELSE now() + make_interval(secs => $4) END
         WHERE id = $1 AND status = 'pending'
        """,
        delivery_id,
        status_code,
        error,
        retry_in_seconds,
    )


async def endpoint_succeeded(conn: asyncpg.Connection, endpoint_id: str) -> None:
    await conn.execute(
        """
        UPDATE webhook_endpoints SET failures_in_a_row = 0, failing_since = NULL
         WHERE id = $1 AND failures_in_a_row > 0
        """,
        endpoint_id,
    )


async def endpoint_failed(conn: asyncpg.Connection, endpoint_id: str) -> Endpoint:
    """Count a failure in the endpoint's current streak; the endpoint after it."""
    row = await conn.fetchrow(
        """
        UPDATE webhook_endpoints
           SET failures_in_a_row = failures_in_a_row + 1, failing_since = coalesce(failing_since, now())
         WHERE id = $1 RETURNING *
        """,
        endpoint_id,
    )
    return Endpoint.from_row(row)


async def deliveries_of(conn: asyncpg.Connection, endpoint_id: str, *, only_failed: bool, limit: int) -> list[Delivery]:
    rows = await conn.fetch(
        """
        SELECT d.*, ev.type AS event_type FROM webhook_deliveries d JOIN outbox_events ev ON ev.id = d.event_id
         WHERE d.endpoint_id = $1
           AND (NOT $2 OR d.status = 'gave_up' OR (d.status = 'pending' AND d.attempts > 0))
         ORDER BY d.id DESC LIMIT $3
        """,
        endpoint_id,
        only_failed,
        limit,
    )
    return [Delivery.from_row(row) for row in rows]


async def attempts_of(conn: asyncpg.Connection, delivery_ids: list[int]) -> list[Attempt]:
    rows = await conn.fetch(
        "SELECT * FROM webhook_delivery_attempts WHERE delivery_id = ANY ($1) ORDER BY delivery_id, id",
        delivery_ids,
    )
    return [Attempt.from_row(row) for row in rows]


async def redeliver(conn: asyncpg.Connection, event_id: str, retry_for_seconds: float) -> list[str]:
    """Send the event again to every endpoint that had it and is not removed: due now, with a fresh retry
    window. The status of each endpoint it was queued for (enabled, failing, disabled)."""
    rows = await conn.fetch(
        """
        UPDATE webhook_deliveries d
           SET status = 'pending', next_attempt_at = now(), give_up_after = now() + make_interval(secs => $2),
               delivered_at = NULL
          FROM webhook_endpoints e
         WHERE d.event_id = $1 AND e.id = d.endpoint_id AND e.removed_at IS NULL
        RETURNING e.status
        """,
        event_id,
        retry_for_seconds,
    )
    return [row["status"] for row in rows]


async def mark_failing(conn: asyncpg.Connection, endpoint_id: str) -> bool:
    """Enabled → failing (an operator's `disabled` stays); True when it changed now."""
    changed = await conn.fetchval(
        "UPDATE webhook_endpoints SET status = 'failing' WHERE id = $1 AND status = 'enabled' RETURNING true",
        endpoint_id,
    )
    return bool(changed)
