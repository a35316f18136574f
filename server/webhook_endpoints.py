"""A tenant's webhook endpoints: where its events go, each with its own signing secret (shown once),
an event filter and a status; their deliveries and attempts; sending an event again.

Statuses: `enabled` (delivered to), `failing` (set by the delivery worker after sustained failures:
nothing is sent until an operator enables it again), `disabled` (set by an operator). Events keep
queueing for a failing or disabled endpoint and go out when it is enabled again. The HTTP API and the
CLI (`paywarden endpoints …`) both call these.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from db import outbox as rows
from db.outbox import Attempt, Delivery, Endpoint
from db.pool import connection, transaction
from server import tenants, webhook_urls
from server.credits import LowBalance
from server.disputes import DisputeView
from server.errors import EventNotFound, InvalidRequest, NotAllowedNow, WebhookEndpointNotFound
from server.fields import check_listing_limit
from server.outbox import EVENT_TYPES, RETRY_FOR_SECONDS, EntitlementGrant, EventType
from server.payments import PaymentView
from server.services import Services
from server.subscription_views import SubscriptionView

EndpointStatus = Literal["enabled", "failing", "disabled"]
DEFAULT_OVERLAP_HOURS = 24.0
MAX_EVENT_TYPES = len(EVENT_TYPES)


class OutboundEvent(BaseModel):
    """What every webhook paywarden sends to a merchant carries (the body, signed with Standard Webhooks)."""

    id: str = Field(description="The event's id (evt_…), also the webhook-id header: deduplicate on it.")
    type: EventType
    created_at: datetime
    tenant: str = Field(description="The tenant the event belongs to.")
    data: PaymentView | EntitlementGrant | LowBalance | DisputeView | SubscriptionView = Field(
        description="payment.* and approval.requested: the payment; entitlement.*: what one payment granted of "
        "one feature; credits.low_balance: the balance that fell below the catalog's threshold; dispute.*: the "
        "dispute (dispute.opened when it is first heard of open, dispute.closed when it closes); "
        "subscription.*: the subscription after the change (status, period, cancel_at_period_end)."
    )


class WebhookEndpointView(BaseModel):
    endpoint_id: str = Field(description="The endpoint's id (we_…).")
    url: str
    event_types: list[EventType] = Field(description="The events sent to it; empty means every type.")
    status: EndpointStatus = Field(
        description="enabled; failing (deliveries kept failing: paused until re-enabled); disabled by an operator."
    )
    tenant: str
    created_at: datetime
    failing_since: datetime | None = Field(description="Since when every attempt has failed, if they do.")
    previous_secret_until: datetime | None = Field(
        description="After a secret rotation: until when the previous secret still signs beside the new one."
    )
    removed_at: datetime | None = Field(
        default=None, description="When it was removed (DELETE): nothing is sent to it since, whatever its status."
    )

    @classmethod
    def of(cls, endpoint: Endpoint) -> WebhookEndpointView:
        return cls(
            endpoint_id=endpoint.id,
            url=endpoint.url,
            event_types=endpoint.event_types,
            status=endpoint.status,
            tenant=endpoint.tenant_id,
            created_at=endpoint.created_at,
            failing_since=endpoint.failing_since,
            previous_secret_until=endpoint.previous_secret_until,
            removed_at=endpoint.removed_at,
        )


class EndpointWithSecret(WebhookEndpointView):
    secret: str = Field(
        description="The whsec_… secret that signs its webhooks (Standard Webhooks). Shown only now: keep it."
    )


class AttemptView(BaseModel):
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response_prefix: str | None

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptView:
        return cls(**{name: getattr(attempt, name) for name in cls.model_fields})


class DeliveryView(BaseModel):
    event_id: str
    event_type: str
    status: Literal["pending", "delivered", "gave_up"]
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    attempt_log: list[AttemptView]

    @classmethod
    def of(cls, delivery: Delivery, attempts: list[Attempt]) -> DeliveryView:
        pending = delivery.status == "pending"
        fields = {name: getattr(delivery, name) for name in cls.model_fields if hasattr(delivery, name)}
        return cls(
            **{**fields, "next_attempt_at": delivery.next_attempt_at if pending else None},
            attempt_log=[AttemptView.of(attempt) for attempt in attempts],
        )


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


async def add(
    services: Services, *, tenant_id: str, url: str, event_types: list[str] | None = None
) -> EndpointWithSecret:
    """A new endpoint for the tenant; its secret is in the answer and never shown again."""
    url = url.strip()
    await webhook_urls.check(url, allow_private=services.settings.allow_private_webhook_urls)
    types = check_event_types(event_types or [])
    if not await tenants.exists(services, tenant_id):
        raise InvalidRequest(f"No tenant {tenant_id!r}; `paywarden tenants list` shows them.", param="tenant")
    secret = new_secret()
    async with transaction(services.pool) as conn:
        endpoint = await rows.insert_endpoint(
            conn,
            endpoint_id="we_" + secrets.token_hex(8),
            tenant_id=tenant_id,
            url=url,
            event_types=types,
            secret=secret,
        )
    return EndpointWithSecret(**WebhookEndpointView.of(endpoint).model_dump(), secret=secret)


def check_event_types(event_types: list[str]) -> list[str]:
    unknown = [name for name in event_types if name not in EVENT_TYPES]
    if unknown:
        raise InvalidRequest(
            f"Unknown event type {unknown[0]!r}; the types are: {', '.join(EVENT_TYPES)}.", param="event_types"
        )
    return sorted(set(event_types), key=EVENT_TYPES.index)


async def listing(services: Services, tenant_id: str | None) -> list[WebhookEndpointView]:
    async with connection(services.pool) as conn:
        return [WebhookEndpointView.of(endpoint) for endpoint in await rows.endpoints(conn, tenant_id)]


async def remove(services: Services, endpoint_id: str, *, tenant_id: str | None) -> WebhookEndpointView:
    """Nothing more is sent to it; what it was sent stays on record."""
    async with transaction(services.pool) as conn:
        await _locked(conn, endpoint_id, tenant_id)
        return WebhookEndpointView.of(await rows.remove_endpoint(conn, endpoint_id))


async def rotate_secret(
    services: Services, endpoint_id: str, *, tenant_id: str | None, overlap_hours: float = DEFAULT_OVERLAP_HOURS
) -> EndpointWithSecret:
    """A new secret signs from now on; the current one signs beside it for `overlap_hours`, so the
    receiver can switch without refusing a single webhook (Standard Webhooks sends both signatures)."""
    if not 0 <= overlap_hours <= 24 * 30:
        raise InvalidRequest("The overlap is 0 to 720 hours.", param="overlap_hours")
    secret = new_secret()
    async with transaction(services.pool) as conn:
        await _locked(conn, endpoint_id, tenant_id)
        endpoint = await rows.rotate_secret(conn, endpoint_id, secret, overlap_hours * 3600)
    return EndpointWithSecret(**WebhookEndpointView.of(endpoint).model_dump(), secret=secret)


async def enable(services: Services, endpoint_id: str, *, tenant_id: str | None) -> tuple[WebhookEndpointView, int]:
    """Deliver to it again: its waiting deliveries are due now (with a fresh retry window); how many."""
    async with transaction(services.pool) as conn:
        await _locked(conn, endpoint_id, tenant_id)
        endpoint = await rows.set_status(conn, endpoint_id, "enabled")
        resumed = await rows.resume_deliveries(conn, endpoint_id, RETRY_FOR_SECONDS)
    return WebhookEndpointView.of(endpoint), resumed


def resumed_said(resumed: int) -> str:
    """What enabling set going, for a person: `1 waiting delivery goes out now`."""
    return f"{resumed} waiting delivery goes out now" if resumed == 1 else f"{resumed} waiting deliveries go out now"


async def disable(services: Services, endpoint_id: str, *, tenant_id: str | None) -> WebhookEndpointView:
    """Send nothing until enabled again; events keep queueing for it meanwhile."""
    async with transaction(services.pool) as conn:
        await _locked(conn, endpoint_id, tenant_id)
        return WebhookEndpointView.of(await rows.set_status(conn, endpoint_id, "disabled"))


async def deliveries(
    services: Services, endpoint_id: str, *, tenant_id: str | None, only_failed: bool = False, limit: int = 50
) -> list[DeliveryView]:
    """The endpoint's latest deliveries, newest first, each with every attempt (`only_failed`: those
    whose attempts so far failed, still retrying or given up)."""
    check_listing_limit(limit)
    async with connection(services.pool) as conn:
        if await rows.get_endpoint(conn, endpoint_id, tenant_id=tenant_id) is None:
            raise _not_found(endpoint_id)
        found = await rows.deliveries_of(conn, endpoint_id, only_failed=only_failed, limit=limit)
        attempts = await rows.attempts_of(conn, [delivery.id for delivery in found])
    return [DeliveryView.of(d, [a for a in attempts if a.delivery_id == d.id]) for d in found]


@dataclass(frozen=True)
class Redelivery:
    event_id: str
    queued: int
    """Endpoints the event is queued for again."""
    paused: int
    """Of those, endpoints paused (failing or disabled): it goes to them once they are enabled again."""

    def said(self) -> str:
        done = f"Event {self.event_id} is queued again for {self.queued} endpoint(s)"
        if not self.paused:
            return f"{done}; it goes out within seconds."
        enable = "(`paywarden endpoints enable ENDPOINT_ID`, or Enable in the console)"
        live = self.queued - self.paused
        if not live:
            return f"{done}, paused: it goes out once enabled again {enable}."
        return f"{done}: to {live} within seconds, to the {self.paused} paused one(s) once enabled again {enable}."


async def redeliver(services: Services, event_id: str, *, tenant_id: str | None) -> Redelivery:
    """Send the event again, now, to every endpoint that had it (receivers deduplicate on its id). Refused
    when no endpoint that had it is left."""
    async with transaction(services.pool) as conn:
        event = await rows.get_event(conn, event_id, tenant_id=tenant_id)
        if event is None:
            raise EventNotFound(f"No event {event_id!r}; `paywarden endpoints deliveries ENDPOINT` lists event ids.")
        statuses = await rows.redeliver(conn, event_id, RETRY_FOR_SECONDS)
    queued = len(statuses)
    if queued == 0:
        raise NotAllowedNow(
            f"Nothing was queued: no endpoint would receive event {event_id!r} (every endpoint it was sent to "
            "has been removed, or it was never sent to one). A new endpoint receives events from then on: add one "
            f"with `paywarden endpoints add --tenant {event['tenant_id']} URL` (or POST /v1/webhook_endpoints).",
            param="event_id",
        )
    return Redelivery(event_id, queued, paused=sum(status != "enabled" for status in statuses))


async def _locked(conn, endpoint_id: str, tenant_id: str | None) -> Endpoint:
    endpoint = await rows.get_endpoint(conn, endpoint_id, tenant_id=tenant_id)
    if endpoint is None:
        raise _not_found(endpoint_id)
    return endpoint


def _not_found(endpoint_id: str) -> WebhookEndpointNotFound:
    return WebhookEndpointNotFound(
        f"No webhook endpoint {endpoint_id!r}; list them with GET /v1/webhook_endpoints or `paywarden endpoints list`."
    )
