"""The sandbox's SQL: its payment intents, refunds and other objects, idempotency keys, events and their
deliveries, and its request log."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg

from server.providers.sandbox.objects import complete


async def webhook_secret(connection: asyncpg.Connection, configured: str | None) -> str:
    """STRIPE_WEBHOOK_SECRET when set; otherwise one generated once and kept in the database."""
    return configured or await _generated_once(connection, "webhook_secret", "whsec_")


async def api_key(connection: asyncpg.Connection) -> str:
    """The sandbox's secret key, generated once per database: only whoever can read the database (paywarden
    itself, `paywarden sandbox key`) can call its API."""
    return await _generated_once(connection, "api_key", "sk_test_")


async def _generated_once(connection: asyncpg.Connection, name: str, prefix: str) -> str:
    await connection.execute(
        "INSERT INTO sandbox.settings (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        name,
        prefix + secrets.token_urlsafe(32),
    )
    return await connection.fetchval("SELECT value FROM sandbox.settings WHERE name = $1", name)


async def claim_idempotency_key(
    connection: asyncpg.Connection, api_key: str, key: str, request_hash: str
) -> asyncpg.Record | None:
    """None when this request took the key; otherwise the earlier request's stored answer."""
    inserted = await connection.fetchval(
        """
        INSERT INTO sandbox.idempotency_keys (api_key, idempotency_key, request_hash)
        VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING true
        """,
        api_key,
        key,
        request_hash,
    )
    if inserted:
        return None
    return await connection.fetchrow(
        """
        SELECT request_hash, status_code, response FROM sandbox.idempotency_keys
         WHERE api_key = $1 AND idempotency_key = $2
        """,
        api_key,
        key,
    )


async def save_idempotent_response(
    connection: asyncpg.Connection, api_key: str, key: str, status_code: int, response: dict[str, Any]
) -> None:
    await connection.execute(
        """
        UPDATE sandbox.idempotency_keys SET status_code = $3, response = $4
         WHERE api_key = $1 AND idempotency_key = $2
        """,
        api_key,
        key,
        status_code,
        response,
    )


async def lock_intent(connection: asyncpg.Connection, intent_id: str) -> dict[str, Any] | None:
    stored = await connection.fetchval("SELECT object FROM sandbox.payment_intents WHERE id = $1 FOR UPDATE", intent_id)
    return complete("payment_intent", stored) if stored else None


async def get_intent(connection: asyncpg.Connection, intent_id: str) -> dict[str, Any] | None:
    stored = await connection.fetchval("SELECT object FROM sandbox.payment_intents WHERE id = $1", intent_id)
    return complete("payment_intent", stored) if stored else None


async def insert_event(connection: asyncpg.Connection, event: dict[str, Any]) -> None:
    """Store the event and schedule its delivery, in the caller's transaction."""
    await connection.execute(
        "INSERT INTO sandbox.events (id, type, payload) VALUES ($1, $2, $3)",
        event["id"],
        event["type"],
        event,
    )
    await connection.execute("INSERT INTO sandbox.deliveries (event_id) VALUES ($1)", event["id"])


@dataclass(frozen=True)
class EventQuery:
    limit: int
    starting_after: str | None = None
    ending_before: str | None = None
    created_gte: int | None = None


async def list_events(connection: asyncpg.Connection, query: EventQuery) -> tuple[list[dict[str, Any]], bool] | None:
    """A page of events newest first, and whether more lie beyond it; None for an unknown cursor.

    `ending_before` pages towards newer events: the page holds the ones just after the cursor.
    """
    cursor = query.starting_after or query.ending_before
    cursor_seq = None
    if cursor is not None:
        cursor_seq = await connection.fetchval("SELECT seq FROM sandbox.events WHERE id = $1", cursor)
        if cursor_seq is None:
            return None
    newer = query.ending_before is not None
    rows = await connection.fetch(
        f"""
        SELECT payload FROM sandbox.events
         WHERE ($1::bigint IS NULL OR seq {">" if newer else "<"} $1)
           AND ($2::bigint IS NULL OR (payload->>'created')::bigint >= $2)
         ORDER BY seq {"ASC" if newer else "DESC"} LIMIT $3
        """,
        cursor_seq,
        query.created_gte,
        query.limit + 1,
    )
    events = [complete("event", row["payload"]) for row in rows[: query.limit]]
    return (list(reversed(events)) if newer else events), len(rows) > query.limit


async def claim_due_deliveries(
    connection: asyncpg.Connection, limit: int, claim_seconds: float
) -> list[asyncpg.Record]:
    """Undelivered events whose time has come, oldest first, claimed for `claim_seconds`.

    The claim is a later next_attempt_at, committed before any request goes out: another process
    skips them, no lock is held while posting, and if this one dies they come due again.
    """
    return await connection.fetch(
        """
        WITH due AS (
            SELECT d.event_id FROM sandbox.deliveries d JOIN sandbox.events e ON e.id = d.event_id
             WHERE d.delivered_at IS NULL AND d.next_attempt_at <= now()
             ORDER BY e.seq LIMIT $1
               FOR UPDATE OF d SKIP LOCKED
        )
        UPDATE sandbox.deliveries d SET next_attempt_at = now() + make_interval(secs => $2)
          FROM due, sandbox.events e
         WHERE d.event_id = due.event_id AND e.id = d.event_id
        RETURNING d.event_id, d.attempts, e.payload, e.seq
        """,
        limit,
        claim_seconds,
    )


async def mark_delivered(connection: asyncpg.Connection, event_id: str) -> None:
    await connection.execute(
        """
        UPDATE sandbox.deliveries SET delivered_at = now(), attempts = attempts + 1, last_error = NULL
         WHERE event_id = $1
        """,
        event_id,
    )


async def schedule_retry(connection: asyncpg.Connection, event_id: str, delay_seconds: float, error: str) -> None:
    await connection.execute(
        """
        UPDATE sandbox.deliveries
           SET attempts = attempts + 1, last_error = $3,
               next_attempt_at = now() + make_interval(secs => $2)
         WHERE event_id = $1
        """,
        event_id,
        delay_seconds,
        error[:500],
    )


async def insert_refund(connection: asyncpg.Connection, refund: dict[str, Any]) -> None:
    await connection.execute(
        "INSERT INTO sandbox.refunds (id, payment_intent, object) VALUES ($1, $2, $3)",
        refund["id"],
        refund["payment_intent"],
        refund,
    )


async def refunded_total(connection: asyncpg.Connection, intent_id: str) -> int:
    return await connection.fetchval(
        "SELECT coalesce(sum((object->>'amount')::bigint), 0)::bigint FROM sandbox.refunds WHERE payment_intent = $1",
        intent_id,
    )


async def get_refund(connection: asyncpg.Connection, refund_id: str) -> dict[str, Any] | None:
    stored = await connection.fetchval("SELECT object FROM sandbox.refunds WHERE id = $1", refund_id)
    return complete("refund", stored) if stored else None


async def get_object(connection: asyncpg.Connection, object_type: str, object_id: str) -> dict[str, Any] | None:
    return await connection.fetchval(
        "SELECT object FROM sandbox.objects WHERE id = $1 AND type = $2", object_id, object_type
    )


async def lock_object(
    connection: asyncpg.Connection, object_type: str, object_id: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The object and its private part, row-locked until the transaction ends."""
    row = await connection.fetchrow(
        "SELECT object, private FROM sandbox.objects WHERE id = $1 AND type = $2 FOR UPDATE", object_id, object_type
    )
    return (row["object"], row["private"]) if row else None


async def get_with_private(
    connection: asyncpg.Connection, object_type: str, object_id: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    row = await connection.fetchrow(
        "SELECT object, private FROM sandbox.objects WHERE id = $1 AND type = $2", object_id, object_type
    )
    return (row["object"], row["private"]) if row else None


async def get_private(connection: asyncpg.Connection, object_type: str, object_id: str) -> dict[str, Any] | None:
    return await connection.fetchval(
        "SELECT private FROM sandbox.objects WHERE id = $1 AND type = $2", object_id, object_type
    )


async def objects_of_customer(connection: asyncpg.Connection, object_type: str, customer: str) -> list[dict[str, Any]]:
    """Newest first, as Stripe lists them."""
    rows = await connection.fetch(
        """
        SELECT object FROM sandbox.objects WHERE type = $1 AND object->>'customer' = $2
         ORDER BY created_at DESC, id DESC
        """,
        object_type,
        customer,
    )
    return [row["object"] for row in rows]


async def due_sessions(connection: asyncpg.Connection, now: int, limit: int) -> list[str]:
    """Open Checkout Sessions whose expires_at has passed, locked for this transaction (others skip them)."""
    rows = await connection.fetch(
        """
        SELECT id FROM sandbox.objects
         WHERE type = 'checkout.session' AND object->>'status' = 'open' AND (object->>'expires_at')::bigint <= $1
         ORDER BY (object->>'expires_at')::bigint LIMIT $2
           FOR UPDATE SKIP LOCKED
        """,
        now,
        limit,
    )
    return [row["id"] for row in rows]


async def log_request(
    connection: asyncpg.Connection,
    *,
    method: str,
    path: str,
    params: dict[str, Any],
    idempotency_key: str | None,
    status_code: int,
) -> None:
    await connection.execute(
        """
        INSERT INTO sandbox.requests (method, path, params, idempotency_key, status_code)
        VALUES ($1, $2, $3, $4, $5)
        """,
        method,
        path,
        params,
        idempotency_key,
        status_code,
    )


async def forget_old_requests(connection: asyncpg.Connection) -> None:
    await connection.execute("DELETE FROM sandbox.requests WHERE created_at < now() - interval '1 day'")


async def put(connection: asyncpg.Connection, obj: dict[str, Any], private: dict[str, Any] | None = None) -> None:
    """Store a new object or its new state (payment intents in their own table, the others in objects)."""
    if obj["object"] == "payment_intent":
        await connection.execute(
            """
            INSERT INTO sandbox.payment_intents (id, object) VALUES ($1, $2)
            ON CONFLICT (id) DO UPDATE SET object = EXCLUDED.object, updated_at = now()
            """,
            obj["id"],
            obj,
        )
        return
    await connection.execute(
        """
        INSERT INTO sandbox.objects (id, type, object, private) VALUES ($1, $2, $3, coalesce($4, '{}'::jsonb))
        ON CONFLICT (id) DO UPDATE SET object = EXCLUDED.object, updated_at = now(),
               private = coalesce($4, sandbox.objects.private)
        """,
        obj["id"],
        obj["object"],
        obj,
        private,
    )


async def session_of_intent(connection: asyncpg.Connection, intent_id: str) -> dict[str, Any] | None:
    """The Checkout Session a payment intent was created for, if any."""
    return await connection.fetchval(
        "SELECT object FROM sandbox.objects WHERE type = 'checkout.session' AND object->>'payment_intent' = $1",
        intent_id,
    )


async def clock_offset(connection: asyncpg.Connection) -> int:
    """How far the sandbox's clock is ahead of real time, in seconds (`paywarden sandbox advance`)."""
    value = await connection.fetchval("SELECT value FROM sandbox.settings WHERE name = 'clock_offset'")
    return int(value) if value else 0


async def lock_clock(connection: asyncpg.Connection) -> None:
    """One clock move at a time (and no renewal while a subscription is being created)."""
    await connection.execute("SELECT pg_advisory_xact_lock(hashtextextended('sandbox clock', 0))")


async def set_clock_offset(connection: asyncpg.Connection, seconds: int) -> None:
    await connection.execute(
        """
        INSERT INTO sandbox.settings (name, value) VALUES ('clock_offset', $1)
        ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value
        """,
        str(seconds),
    )


async def live_subscriptions(connection: asyncpg.Connection) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every subscription the clock may still act on, locked, with its private part."""
    rows = await connection.fetch(
        """
        SELECT object, private FROM sandbox.objects
         WHERE type = 'subscription' AND object->>'status' IN ('incomplete', 'trialing', 'active', 'past_due')
         ORDER BY id FOR UPDATE
        """
    )
    return [(row["object"], row["private"]) for row in rows]


async def prices_by_lookup_keys(connection: asyncpg.Connection, keys: list[str]) -> list[dict[str, Any]]:
    rows = await connection.fetch(
        """
        SELECT object FROM sandbox.objects
         WHERE type = 'price' AND object->>'lookup_key' = ANY($1::text[]) ORDER BY created_at DESC, id DESC
        """,
        keys,
    )
    return [row["object"] for row in rows]


async def release_lookup_key(connection: asyncpg.Connection, lookup_key: str) -> None:
    """`transfer_lookup_key`: the price that had the key loses it."""
    await connection.execute(
        """
        UPDATE sandbox.objects SET object = jsonb_set(object, '{lookup_key}', 'null'::jsonb), updated_at = now()
         WHERE type = 'price' AND object->>'lookup_key' = $1
        """,
        lookup_key,
    )
