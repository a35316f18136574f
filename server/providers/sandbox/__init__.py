"""A local, Stripe-compatible payment provider: the default, so nobody needs an account to try paywarden.

It serves the subset of Stripe's HTTP API that the Stripe adapter uses (payment intents: create,
confirm, retrieve, cancel; refunds; customers; payment methods; setup intents; Checkout Sessions:
create, retrieve, expire; events), returns every object with all the top-level fields Stripe's has
(objects.py), picks outcomes by Stripe's test payment methods, shows the hosted pages where a person
pays, authenticates or saves a card, expires Checkout Sessions whose time is up, and delivers
Stripe-signed webhooks until they are acknowledged. Its state lives in PostgreSQL, schema `sandbox`.

`run_sandbox` is its one entry point: the services of `paywarden up` start it, and the HTTP adapter
mounts the application it returns at /sandbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from starlette.types import ASGIApp

from server.config import Settings
from server.providers.sandbox import billing, movements, store
from server.providers.sandbox.api import build_app
from server.providers.sandbox.api_checkout import expire_due_sessions
from server.providers.sandbox.delivery import WebhookDeliverer
from server.providers.sandbox.events import emit
from server.providers.sandbox.requests import SandboxState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sandbox:
    app: ASGIApp
    """Its API (/v1/…) and hosted pages (/pay/…), to be mounted at /sandbox."""
    api_key: str


async def clock(pool: asyncpg.Pool) -> int:
    """The sandbox's clock (Unix seconds): real time plus however far it was advanced."""
    async with pool.acquire() as conn:
        return await billing.now(conn)


async def advance_clock(pool: asyncpg.Pool, days: int, base_url: str) -> tuple[int, int]:
    """Move the sandbox's clock forward, running every renewal, retry and period-end cancellation that falls
    due, in order (their events are delivered by the running sandbox as usual): (the new time, how many ran).
    Raises ValueError, with a message for people, for days out of range."""
    if not 1 <= days <= billing.MAX_ADVANCE_DAYS:
        raise ValueError(f"--days must be between 1 and {billing.MAX_ADVANCE_DAYS}; got {days}.")
    async with pool.acquire() as conn, conn.transaction():
        return await billing.advance(conn, days * billing.DAY, f"{base_url}/sandbox")


async def api_key(pool: asyncpg.Pool) -> str:
    """The sandbox's secret key for this database (generated on first use)."""
    async with pool.acquire() as conn:
        return await store.api_key(conn)


async def close_dispute(pool: asyncpg.Pool, dispute_id: str, *, won: bool) -> str:
    """Decide an open dispute as the card network would (`paywarden sandbox dispute close`); its events are
    delivered by the sandbox `paywarden up` serves. Raises LookupError or ValueError, with a message for people."""
    async with pool.acquire() as conn, conn.transaction():
        for event_type, obj in await movements.close_dispute(conn, dispute_id, won=won):
            await emit(conn, event_type, obj, None)
    return "won" if won else "lost"


@asynccontextmanager
async def run_sandbox(settings: Settings, pool: asyncpg.Pool, webhook_secret: str) -> AsyncIterator[Sandbox]:
    """Serve the sandbox and deliver its webhooks (to this process's /webhooks/stripe, or
    PAYWARDEN_SANDBOX_WEBHOOK_URL) until the block ends."""
    signing_secret = webhook_secret.split(",")[0].strip()  # several may be accepted (rotation); one signs
    deliver_to = settings.sandbox_webhook_url or f"{settings.base_url}/webhooks/stripe"
    deliverer = WebhookDeliverer(pool, deliver_to, signing_secret, settings.sandbox_delivery_interval_seconds)
    key = await api_key(pool)
    state = SandboxState(pool=pool, base_url=f"{settings.base_url}/sandbox", api_key=key, wake_deliverer=deliverer.wake)
    sandbox = Sandbox(app=build_app(state), api_key=key)
    interval = settings.sandbox_delivery_interval_seconds
    tasks = [asyncio.create_task(_expire_sessions_forever(state, interval), name="sandbox-checkout-expiry")]
    if settings.sandbox_deliver_webhooks:
        tasks.append(asyncio.create_task(deliverer.run_forever(), name="sandbox-webhook-delivery"))
    try:
        yield sandbox
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await deliverer.close()


async def _expire_sessions_forever(state: SandboxState, interval: float) -> None:
    """Checkout Sessions expire by themselves at their expires_at, as Stripe's do."""
    while True:
        try:
            await expire_due_sessions(state)
        except Exception as error:  # the loop must outlive any one failure (the database restarting)
            logger.warning("sandbox session expiry paused: %s", type(error).__name__)
        await asyncio.sleep(interval)
