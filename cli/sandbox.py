"""`paywarden sandbox key`: the sandbox provider's secret key, to point a Stripe client at /sandbox;
`paywarden sandbox clock` and `paywarden sandbox advance --days N`: its test clock, which bills subscriptions."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from cli.common import with_services
from server.config import Settings
from server.providers import sandbox

MAX_DAYS = 3660


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("sandbox", help="the sandbox provider")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    actions.add_parser("key", help="print the sandbox's secret key (per database)").set_defaults(command=run_key)
    actions.add_parser("clock", help="show the sandbox's clock").set_defaults(command=run_clock)
    advance = actions.add_parser(
        "advance", help="move the sandbox's clock forward, running the renewals, retries and cancellations due"
    )
    advance.add_argument("--days", type=int, required=True, help="how many days (1 to 3660)")
    advance.set_defaults(command=run_advance)


def run_key(settings: Settings, args: argparse.Namespace) -> int:
    key = with_services(settings, lambda services: sandbox.api_key(services.pool))
    print(key)
    return 0


def run_clock(settings: Settings, args: argparse.Namespace) -> int:
    at = with_services(settings, lambda services: sandbox.clock(services.pool))
    print(f"sandbox clock: {_shown(at)}")
    return 0


def run_advance(settings: Settings, args: argparse.Namespace) -> int:
    if not 1 <= args.days <= MAX_DAYS:
        print(f"--days must be between 1 and {MAX_DAYS}.", file=sys.stderr)
        return 2
    seconds = args.days * 86400
    at, ran = with_services(settings, lambda services: sandbox.advance_clock(services.pool, seconds, settings.base_url))
    print(f"sandbox clock: {_shown(at)} ({ran} renewals, retries and cancellations ran)")
    return 0


def _shown(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
