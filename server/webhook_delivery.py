"""Delivers the outbox's events to the merchants' endpoints, signed with Standard Webhooks.

Several processes may run it on one database: each claims due deliveries (FOR UPDATE SKIP LOCKED,
then a later next_attempt_at committed before anything is sent), so each delivery goes out from one
process at a time. `webhook-id` is the event's id, the same on every retry, so a receiver can
deduplicate. A failed attempt is retried with exponential backoff and jitter for up to three days;
every attempt is recorded (status, latency, error, a short prefix of the answer). An endpoint whose
attempts keep failing is marked `failing` and paused until an operator enables it again. Redirects
are not followed, and the address is checked again right before each attempt (server/webhook_urls.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from standardwebhooks.webhooks import Webhook

from db import outbox as rows
from db.outbox import ClaimedDelivery
from db.pool import retry_on_deadlock, transaction
from server import metrics, tls, webhook_urls
from server.errors import UnsafeWebhookUrl
from server.services import Services

logger = logging.getLogger(__name__)
BATCH = 20
RESPONSE_PREFIX_BYTES = 200
USER_AGENT = "paywarden-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    latency_ms: int
    error: str | None = None
    response_prefix: str | None = None
    refused: bool = False
    """Not sent at all: the address guard refused the URL."""

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signed_headers(event_id: str, body: str, secrets: list[str], at: datetime) -> dict[str, str]:
    """Standard Webhooks headers; during a secret rotation, one signature per secret in one header."""
    signatures = [Webhook(secret).sign(event_id, at, body) for secret in secrets]
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def backoff_seconds(attempts_so_far: int, base: float, cap: float) -> float:
    """Doubling from `base` up to `cap`, with jitter (half fixed, half random) so retries spread out."""
    delay = min(base * 2.0 ** min(attempts_so_far, 30), cap)
    return delay / 2 + random.uniform(0, delay / 2)


class Deliverer:
    """One process's delivery loop over the shared outbox."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._settings = services.settings
        # No redirects (a redirect could lead anywhere the guard refused); the pool reuses connections.
        self._http = httpx.AsyncClient(
            timeout=self._settings.webhook_timeout_seconds, follow_redirects=False, verify=tls.client_context()
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def deliver_due(self) -> int:
        """Attempt every delivery whose time has come (a batch at a time); how many were attempted."""
        claim_seconds = self._settings.webhook_timeout_seconds * 3 + 30  # outlasts the attempt it covers
        async with transaction(self._services.pool) as conn:
            claimed = await rows.claim_due(conn, BATCH, claim_seconds)
        await asyncio.gather(*(self._attempt(delivery) for delivery in claimed))
        return len(claimed)

    async def run_forever(self) -> None:
        while True:
            try:
                while await self.deliver_due() == BATCH:
                    pass
            except Exception as error:  # the loop carries every merchant's events: it must outlive any failure
                logger.warning("webhook delivery paused: %s", type(error).__name__)
            await asyncio.sleep(self._settings.webhook_delivery_interval_seconds)

    async def _attempt(self, delivery: ClaimedDelivery) -> None:
        body = json.dumps(delivery.payload, separators=(",", ":"))
        headers = signed_headers(delivery.event_id, body, delivery.secrets, datetime.now(UTC))
        outcome = await self._send(delivery.url, body, headers)
        await self._record(delivery, outcome)
        result = "delivered" if outcome.delivered else ("refused" if outcome.refused else "failed")
        metrics.WEBHOOK_DELIVERIES.labels(result).inc()
        logger.info(
            "webhook %s to %s: %s",
            delivery.event_id,
            delivery.endpoint_id,
            outcome.status_code or outcome.error,
            extra={"event_id": delivery.event_id},
        )

    async def _send(self, url: str, body: str, headers: dict[str, str]) -> Outcome:
        started = time.perf_counter()
        try:
            target = await webhook_urls.target(url, allow_private=self._settings.allow_private_webhook_urls)
        except UnsafeWebhookUrl as refused:
            return Outcome(None, _since(started), f"not sent: {refused.message}", refused=True)
        try:
            async with self._http.stream(
                "POST", target.url, content=body, headers={**headers, **target.headers}, extensions=target.extensions
            ) as response:
                prefix = await _prefix(response)
        except httpx.HTTPError as error:
            return Outcome(None, _since(started), f"{type(error).__name__}: {_reason(error)}")
        error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        return Outcome(response.status_code, _since(started), error, prefix)

    @retry_on_deadlock
    async def _record(self, delivery: ClaimedDelivery, outcome: Outcome) -> None:
        async with transaction(self._services.pool) as conn:
            await rows.record_attempt(
                conn,
                delivery.id,
                status_code=outcome.status_code,
                latency_ms=outcome.latency_ms,
                error=outcome.error,
                response_prefix=outcome.response_prefix,
            )
            if outcome.delivered:
                await rows.mark_delivered(conn, delivery.id, outcome.status_code or 200)
                await rows.endpoint_succeeded(conn, delivery.endpoint_id)
                return
            retry_in = self._retry_in(delivery)
            await rows.mark_failed_attempt(
                conn, delivery.id, status_code=outcome.status_code, error=outcome.error or "", retry_in_seconds=retry_in
            )
            if retry_in is None:
                metrics.WEBHOOK_DELIVERIES.labels("gave_up").inc()
            endpoint = await rows.endpoint_failed(conn, delivery.endpoint_id)
            if self._sustained(endpoint.failures_in_a_row, endpoint.failing_since):
                if await rows.mark_failing(conn, delivery.endpoint_id):
                    logger.warning("webhook endpoint %s marked failing", delivery.endpoint_id)

    def _retry_in(self, delivery: ClaimedDelivery) -> float | None:
        """Seconds until the next attempt; None when that would fall after the delivery's give-up time."""
        delay = backoff_seconds(
            delivery.attempts, self._settings.webhook_retry_base_seconds, self._settings.webhook_retry_max_seconds
        )
        return None if datetime.now(UTC) + timedelta(seconds=delay) > delivery.give_up_after else delay

    def _sustained(self, failures: int, since: datetime | None) -> bool:
        settings = self._settings
        long_enough = since is not None and datetime.now(UTC) - since >= timedelta(
            seconds=settings.webhook_failing_after_seconds
        )
        return failures >= settings.webhook_failing_after_attempts and long_enough


@asynccontextmanager
async def running_in_background(services: Services) -> AsyncIterator[Deliverer]:
    """While the block runs, deliveries go out every PAYWARDEN_WEBHOOK_DELIVERY_INTERVAL_SECONDS."""
    deliverer = Deliverer(services)
    task = asyncio.create_task(deliverer.run_forever(), name="webhook-delivery")
    try:
        yield deliverer
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await deliverer.close()


async def _prefix(response: httpx.Response) -> str | None:
    """At most RESPONSE_PREFIX_BYTES of the answer, as text with no control characters; the rest is never read."""
    received = b""
    async for chunk in response.aiter_raw():
        received += chunk
        if len(received) >= RESPONSE_PREFIX_BYTES:
            break
    text = received[:RESPONSE_PREFIX_BYTES].decode("utf-8", errors="replace")
    return "".join(c if c.isprintable() else " " for c in text).strip() or None


def _since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _reason(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "no answer in time"
    if isinstance(error, httpx.ConnectError):
        return "could not connect"
    return "the connection failed"
