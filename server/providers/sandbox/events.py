"""The sandbox's events: Stripe-shaped, stored with their delivery in the caller's transaction."""

from __future__ import annotations

import secrets
import time
from typing import Any

import asyncpg

from server.providers.sandbox import movements, store
from server.providers.sandbox.objects import API_VERSION, event_template, fill


def event(event_type: str, obj: dict[str, Any], idempotency_key: str | None) -> dict[str, Any]:
    return fill(
        event_template("evt_" + secrets.token_hex(12)),
        api_version=API_VERSION,
        created=int(time.time()),
        type=event_type,
        pending_webhooks=1,
        request={"id": None, "idempotency_key": idempotency_key},
        data={"object": obj, "previous_attributes": None},
    )


async def emit(connection: asyncpg.Connection, event_type: str, obj: dict[str, Any], key: str | None) -> None:
    """Store the event and schedule its delivery to the webhook endpoint; then what it sets in motion (the money
    it moved in the balance, a dispute a test card opens), with the events of that."""
    await store.insert_event(connection, event(event_type, obj, key))
    for next_type, next_obj in await movements.follow(connection, event_type, obj):
        await emit(connection, next_type, next_obj, key)
