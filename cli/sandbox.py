"""`paywarden sandbox key`: the sandbox provider's secret key, to point a Stripe client at /sandbox."""

from __future__ import annotations

import argparse

from cli.common import with_services
from server.config import Settings
from server.providers import sandbox


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("sandbox", help="the sandbox provider")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    actions.add_parser("key", help="print the sandbox's secret key (per database)").set_defaults(command=run_key)


def run_key(settings: Settings, args: argparse.Namespace) -> int:
    key = with_services(settings, lambda services: sandbox.api_key(services.pool))
    print(key)
    return 0
