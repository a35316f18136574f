"""`paywarden endpoints …`: the tenants' webhook endpoints (where paywarden sends their events), their
deliveries, and sending an event again."""

from __future__ import annotations

import argparse

from cli.common import with_services
from server import webhook_endpoints
from server.config import Settings
from server.outbox import EVENT_TYPES
from server.webhook_endpoints import DeliveryView, EndpointWithSecret, WebhookEndpointView


def register(commands: argparse._SubParsersAction) -> None:
    endpoints = commands.add_parser("endpoints", help="webhook endpoints of your app: add, list, deliveries, …")
    actions = endpoints.add_subparsers(required=True, metavar="ACTION")
    add = actions.add_parser("add", help="send a tenant's events to URL; prints its signing secret once")
    add.add_argument("--tenant", required=True)
    add.add_argument("url")
    add.add_argument("--events", help=f"comma-separated event types (default: all of {', '.join(EVENT_TYPES)})")
    add.set_defaults(command=run_add)
    listing = actions.add_parser("list", help="every endpoint, with its status")
    listing.add_argument("--tenant", help="only this tenant's endpoints")
    listing.set_defaults(command=run_list)
    for name, what, command in (
        ("remove", "send nothing more to it", run_remove),
        ("enable", "deliver to it again (after it was failing or disabled): what waits goes out now", run_enable),
        ("disable", "send nothing until enabled again (events keep queueing)", run_disable),
    ):
        action = actions.add_parser(name, help=what)
        action.add_argument("endpoint_id")
        action.set_defaults(command=command)
    rotate = actions.add_parser("rotate-secret", help="a new signing secret, printed once; the old one signs too")
    rotate.add_argument("endpoint_id")
    rotate.add_argument("--overlap-hours", type=float, default=webhook_endpoints.DEFAULT_OVERLAP_HOURS)
    rotate.set_defaults(command=run_rotate)
    deliveries = actions.add_parser("deliveries", help="an endpoint's latest deliveries and every attempt")
    deliveries.add_argument("endpoint_id")
    deliveries.add_argument("--failed", action="store_true", help="only deliveries whose attempts failed")
    deliveries.add_argument("--limit", type=int, default=50)
    deliveries.set_defaults(command=run_deliveries)
    redeliver = actions.add_parser("redeliver", help="send an event again, now, to every endpoint that had it")
    redeliver.add_argument("event_id")
    redeliver.set_defaults(command=run_redeliver)


def run_add(settings: Settings, args: argparse.Namespace) -> int:
    events = [name.strip() for name in (args.events or "").split(",") if name.strip()]
    added = with_services(
        settings,
        lambda services: webhook_endpoints.add(services, tenant_id=args.tenant, url=args.url, event_types=events),
    )
    print(_line(added))
    _show_secret(added)
    return 0


def run_list(settings: Settings, args: argparse.Namespace) -> int:
    endpoints = with_services(settings, lambda services: webhook_endpoints.listing(services, args.tenant))
    for endpoint in endpoints:
        print(_line(endpoint))
    print(f"{len(endpoints)} endpoint(s)")
    return 0


def run_remove(settings: Settings, args: argparse.Namespace) -> int:
    removed = with_services(
        settings, lambda services: webhook_endpoints.remove(services, args.endpoint_id, tenant_id=None)
    )
    print(f"{removed.endpoint_id} ({removed.url}) removed: nothing more is sent to it")
    return 0


def run_enable(settings: Settings, args: argparse.Namespace) -> int:
    endpoint, resumed = with_services(
        settings, lambda services: webhook_endpoints.enable(services, args.endpoint_id, tenant_id=None)
    )
    print(f"{endpoint.endpoint_id} enabled; {webhook_endpoints.resumed_said(resumed)}")
    return 0


def run_disable(settings: Settings, args: argparse.Namespace) -> int:
    endpoint = with_services(
        settings, lambda services: webhook_endpoints.disable(services, args.endpoint_id, tenant_id=None)
    )
    print(f"{endpoint.endpoint_id} disabled: events queue for it until `paywarden endpoints enable`")
    return 0


def run_rotate(settings: Settings, args: argparse.Namespace) -> int:
    rotated = with_services(
        settings,
        lambda services: webhook_endpoints.rotate_secret(
            services, args.endpoint_id, tenant_id=None, overlap_hours=args.overlap_hours
        ),
    )
    until = rotated.previous_secret_until
    print(f"{rotated.endpoint_id}: new secret; the previous one also signs until {until:%Y-%m-%d %H:%M:%S} UTC")
    _show_secret(rotated)
    return 0


def run_deliveries(settings: Settings, args: argparse.Namespace) -> int:
    deliveries = with_services(
        settings,
        lambda services: webhook_endpoints.deliveries(
            services, args.endpoint_id, tenant_id=None, only_failed=args.failed, limit=args.limit
        ),
    )
    for delivery in deliveries:
        print(_delivery_line(delivery))
        for attempt in delivery.attempt_log:
            answer = f" answer={attempt.response_prefix!r}" if attempt.response_prefix else ""
            print(
                f"    {attempt.attempted_at:%Y-%m-%d %H:%M:%S} status={attempt.status_code or '-'} "
                f"{attempt.latency_ms} ms{f' error={attempt.error}' if attempt.error else ''}{answer}"
            )
    print(f"{len(deliveries)} deliver{'y' if len(deliveries) == 1 else 'ies'}")
    return 0


def run_redeliver(settings: Settings, args: argparse.Namespace) -> int:
    done = with_services(
        settings, lambda services: webhook_endpoints.redeliver(services, args.event_id, tenant_id=None)
    )
    print(done.said())
    return 0


def _line(endpoint: WebhookEndpointView) -> str:
    events = ",".join(endpoint.event_types) or "all events"
    return (
        f"{endpoint.endpoint_id} tenant={endpoint.tenant} {_state(endpoint)} url={endpoint.url} "
        f"events={events} created={endpoint.created_at:%Y-%m-%d %H:%M}"
    )


def _state(endpoint: WebhookEndpointView) -> str:
    """Still sending while recent attempts fail reads differently from paused (failing) or disabled."""
    since = f"{endpoint.failing_since:%Y-%m-%d %H:%M}" if endpoint.failing_since else None
    if endpoint.status == "enabled":
        return f"enabled, last attempts failing since {since}" if since else "enabled"
    if endpoint.status == "failing":
        return f"failing{f' since {since}' if since else ''}, paused until `paywarden endpoints enable`"
    return "disabled, paused until `paywarden endpoints enable`"


def _delivery_line(delivery: DeliveryView) -> str:
    next_try = f" next={delivery.next_attempt_at:%Y-%m-%d %H:%M:%S}" if delivery.next_attempt_at else ""
    error = f" last_error={delivery.last_error}" if delivery.last_error else ""
    return (
        f"{delivery.created_at:%Y-%m-%d %H:%M:%S} {delivery.event_id} {delivery.event_type} {delivery.status} "
        f"attempts={delivery.attempts}{next_try}{error}"
    )


def _show_secret(endpoint: EndpointWithSecret) -> None:
    print(f"\n  {endpoint.secret}\n")
    print("This is the only time the secret is shown. Verify each webhook's signature with it (Standard Webhooks:")
    print("the webhook-id, webhook-timestamp and webhook-signature headers; e.g. the standardwebhooks library).")
