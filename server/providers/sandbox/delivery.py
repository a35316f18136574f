"""Delivers the sandbox's events to the webhook endpoint, Stripe-signed, retrying with backoff until a 2xx."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import suppress

import asyncpg
import httpx
import stripe

from server import tls
from server.providers.sandbox import store

logger = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 300.0
BATCH = 20
CLAIM_SECONDS = 60.0


def backoff_seconds(attempts_so_far: int) -> float:
    """1 s, 2 s, 4 s, … up to five minutes between attempts."""
    return min(2.0 ** min(attempts_so_far, 16), MAX_BACKOFF_SECONDS)


class WebhookDeliverer:
    def __init__(self, pool: asyncpg.Pool, url: str, secret: str, poll_seconds: float = 1.0) -> None:
        self._pool = pool
        self._url = url
        self._secret = secret
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._http = httpx.AsyncClient(timeout=10.0, verify=tls.client_context())

    def wake(self) -> None:
        """Deliver now rather than at the next poll (called after the sandbox stores an event)."""
        self._wake.set()

    async def run_forever(self) -> None:
        try:
            while True:
                await self._deliver_safely()
                with suppress(TimeoutError):
                    # Not asyncio.wait_for: on Python 3.11 a wake-up at the moment the loop is cancelled made it
                    # swallow the cancellation, and the loop ran on (a server's shutdown then waited forever).
                    async with asyncio.timeout(self._poll_seconds):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def deliver_due(self) -> int:
        """Send every event whose time has come; returns how many were acknowledged."""
        async with self._pool.acquire() as conn:
            claimed = await store.claim_due_deliveries(conn, BATCH, CLAIM_SECONDS)
        delivered = 0
        for row in sorted(claimed, key=lambda row: row["seq"]):
            error = await self._post(row["payload"])
            async with self._pool.acquire() as conn:
                if error is None:
                    await store.mark_delivered(conn, row["event_id"])
                    delivered += 1
                else:
                    await store.schedule_retry(conn, row["event_id"], backoff_seconds(row["attempts"]), error)
        return delivered

    async def _deliver_safely(self) -> None:
        try:
            while await self.deliver_due() == BATCH:
                pass
        except Exception as error:  # the loop must outlive any one failure: it carries every event
            logger.warning("sandbox webhook delivery paused: %s", type(error).__name__)

    async def _post(self, payload: dict) -> str | None:
        body = json.dumps(payload, separators=(",", ":"))
        signature = stripe.WebhookSignature.generate_signature_header(body, self._secret, int(time.time()))
        headers = {"Content-Type": "application/json", "Stripe-Signature": signature}
        try:
            response = await self._http.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as error:
            return f"{type(error).__name__} posting to {self._url}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"
