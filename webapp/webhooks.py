"""POST /webhooks/stripe (and a tenant's own /webhooks/stripe/<tenant>, and /webhooks/standard): verify the
signature on the raw body, then hand the event to the inbox."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from server import inbox, metrics, tenants
from server.errors import (
    MalformedEvent,
    NotConfigured,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    WebhookRejected,
)
from server.providers import WebhookEvent
from server.services import Services
from webapp.dependencies import ServicesDep, services_of

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
MAX_BODY_BYTES = 1024 * 1024


async def raw_body(request: Request) -> bytes:
    """The body exactly as sent (signatures cover the bytes), refused past 1 MiB before reading it all,
    and refused unread unless it says it is JSON."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType("Webhook bodies must be application/json; nothing was stored.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"Webhook bodies are limited to {MAX_BODY_BYTES} bytes; nothing was stored.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"Webhook bodies are limited to {MAX_BODY_BYTES} bytes; nothing was stored.")
        chunks.append(chunk)
    return b"".join(chunks)


async def _verified(
    services: Services, verify: Callable[[], WebhookEvent], endpoint: str = inbox.PLATFORM
) -> WebhookEvent:
    """The verified event; a refusal is counted, and a signed body that is not an event is kept."""
    try:
        return verify()
    except MalformedEvent as error:  # signed by the provider, so kept: someone should look at it
        stored_as = await inbox.store_rejected(services, error.raw or "", error.message, endpoint)
        raise MalformedEvent(f"{error.message} It was stored as rejected ({stored_as}).") from None
    except WebhookRejected:
        metrics.WEBHOOK_EVENTS.labels("rejected").inc()
        raise


@router.post("/webhooks/stripe")
async def receive_stripe_event(request: Request) -> JSONResponse:
    """The platform endpoint: each event goes to the tenant whose payment it names. The hottest route: its
    steps are called here rather than resolved as dependencies, which costs FastAPI more per request."""
    services = services_of(request)
    body = await raw_body(request)
    signature = request.headers.get("stripe-signature")
    event = await _verified(services, lambda: services.provider.verify_webhook(body, signature))
    return await _ingested(services, event)


@router.post("/webhooks/stripe/{tenant_id}")
async def receive_tenant_stripe_event(
    tenant_id: str, request: Request, services: ServicesDep, body: Annotated[bytes, Depends(raw_body)]
) -> JSONResponse:
    """A tenant's own endpoint, verified with that tenant's secret: its events touch only its payments."""
    secrets = await tenants.webhook_secret(services, tenant_id)
    if not secrets:
        raise NotFound("No webhook endpoint for this tenant; nothing was stored.")
    signature = request.headers.get("stripe-signature")
    arrival = inbox.Arrival.tenant(tenant_id)
    verify = functools.partial(services.provider.verify_webhook, body, signature, secrets)
    event = await _verified(services, verify, arrival.endpoint)
    return await _ingested(services, event, arrival)


async def _ingested(services: Services, event: WebhookEvent, arrival: inbox.Arrival | None = None) -> JSONResponse:
    result = await inbox.ingest(services, event, arrival)
    logger.info(
        "webhook %s %s: %s %s",
        event.event_id,
        event.event_type,
        result.outcome,
        result.note or "",
        extra={"event_id": event.event_id, "payment_id": result.payment_id},
    )
    body = {"received": True, "event_id": event.event_id, "outcome": result.outcome, "note": result.note}
    # A stored event whose handling failed: a 5xx makes the provider deliver it again, and then it is retried.
    return JSONResponse(body, 500 if result.outcome in ("failed", "parked") else 200)


async def verified_standard_event(
    request: Request, services: ServicesDep, body: Annotated[bytes, Depends(raw_body)]
) -> WebhookEvent:
    verifier = services.standard_webhooks
    if verifier is None:
        raise NotConfigured("Standard Webhooks are not configured here (set PAYWARDEN_STANDARD_WEBHOOK_SECRET).")
    return await _verified(services, lambda: verifier.verify(body, request.headers), STANDARD.endpoint)


STANDARD = inbox.Arrival(endpoint="standard")


@router.post("/webhooks/standard")
async def receive_standard_event(
    services: ServicesDep, event: Annotated[WebhookEvent, Depends(verified_standard_event)]
) -> JSONResponse:
    """The same inbox as /webhooks/stripe, for a provider that signs with Standard Webhooks (its event ids
    are scoped to this endpoint)."""
    return await _ingested(services, event, STANDARD)
