"""`paywarden sandbox key`: the sandbox provider's secret key, to point a Stripe client at /sandbox;
`paywarden sandbox dispute close DISPUTE_ID --won|--lost`: decide a sandbox dispute as the card network would;
`paywarden sandbox clock` and `paywarden sandbox advance --days N`: its test clock, which bills subscriptions."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from cli.common import with_services
from server.config import Settings
from server.providers import sandbox


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("sandbox", help="the sandbox provider")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    actions.add_parser("key", help="print the sandbox's secret key (per database)").set_defaults(command=run_key)
    dispute = actions.add_parser("dispute", help="the sandbox's disputes").add_subparsers(
        required=True, metavar="ACTION"
    )
    close = dispute.add_parser("close", help="close an open dispute, won or lost (its events go to paywarden)")
    close.add_argument("dispute_id", metavar="DISPUTE_ID", help="the dispute's id (du_…)")
    outcome = close.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--won", action="store_true", help="the merchant won: the money comes back")
    outcome.add_argument("--lost", action="store_true", help="the customer won: the money stays withdrawn")
    close.set_defaults(command=run_close_dispute)
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


def run_close_dispute(settings: Settings, args: argparse.Namespace) -> int:
    try:
        outcome = with_services(
            settings, lambda services: sandbox.close_dispute(services.pool, args.dispute_id, won=args.won)
        )
    except (LookupError, ValueError) as error:
        print(f"paywarden: {error}", file=sys.stderr)
        return 1
    print(f"Dispute {args.dispute_id} closed as {outcome}; its events are on their way to paywarden.")
    return 0


def run_clock(settings: Settings, args: argparse.Namespace) -> int:
    at = with_services(settings, lambda services: sandbox.clock(services.pool))
    print(f"sandbox clock: {_shown(at)}")
    return 0


def run_advance(settings: Settings, args: argparse.Namespace) -> int:
    try:
        at, ran = with_services(
            settings, lambda services: sandbox.advance_clock(services.pool, args.days, settings.base_url)
        )
    except ValueError as error:
        print(f"paywarden: {error}", file=sys.stderr)
        return 1
    print(f"sandbox clock: {_shown(at)} ({ran} renewals, retries and cancellations ran)")
    return 0


def _shown(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
