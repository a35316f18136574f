"""`paywarden webhooks list | replay`: the webhook inbox, for an operator."""

from __future__ import annotations

import argparse
import logging

from cli.common import with_services
from server import inbox
from server.config import Settings
from server.inbox import InboxEntry

logger = logging.getLogger("paywarden")


def register(commands: argparse._SubParsersAction) -> None:
    webhooks = commands.add_parser("webhooks", help="look at the webhook inbox; replay an event")
    actions = webhooks.add_subparsers(required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list", help="the newest stored events that did something, problems first in the eye (--all for every one)"
    )
    shown = listing.add_mutually_exclusive_group()
    shown.add_argument("--all", action="store_true", help="also events that needed no action (unhandled, ignored, …)")
    shown.add_argument(
        "--problems", action="store_true", help="only failed, parked, rejected and needs_attention events"
    )
    shown.add_argument("--failed", action="store_true", help="only events whose handling failed (or was parked)")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(command=run_list)
    replay = actions.add_parser("replay", help="apply a stored event again (only failed ones change)")
    replay.add_argument("event_id")
    replay.set_defaults(command=run_replay)


def run_list(settings: Settings, args: argparse.Namespace) -> int:
    which = "all" if args.all else "problems" if args.problems else "failed" if args.failed else "default"
    entries = with_services(settings, lambda services: inbox.listing(services, which=which, limit=args.limit))
    for entry in entries:
        print(_line(entry))
    problems = sum(entry.is_problem for entry in entries)
    hidden = "" if which == "all" else "; events that needed no action are hidden (--all shows them)"
    print(f"{len(entries)} event(s), {problems} needing an operator{hidden}")
    return 0


def _line(entry: InboxEntry) -> str:
    marker = "PROBLEM " if entry.is_problem else "no action " if entry.needs_no_action else ""
    detail = f"  error: {entry.last_error}" if entry.last_error else f"  ({entry.note})" if entry.note else ""
    return (
        f"{marker}{entry.received_at:%Y-%m-%d %H:%M:%S} {entry.event_id} {entry.event_type} {entry.outcome} "
        f"attempts={entry.attempts} payment={entry.payment_id or '-'} tenant={entry.tenant_id or '-'} "
        f"via={entry.source}{detail}"
    )


def run_replay(settings: Settings, args: argparse.Namespace) -> int:
    results = with_services(settings, lambda services: inbox.replay(services, args.event_id))
    for result in results:
        logger.info("replay of %s: %s", args.event_id, result.outcome, extra={"event_id": args.event_id})
        print(f"{args.event_id}: {result.outcome}" + (f" ({result.note})" if result.note else ""))
    return 1 if any(result.outcome in ("failed", "parked", "unknown") for result in results) else 0
