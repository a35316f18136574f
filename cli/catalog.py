"""`paywarden catalog sync`: the provider's Products and Prices for the catalog's recurring products."""

from __future__ import annotations

import argparse

from cli.common import with_services
from server import subscriptions
from server.config import Settings
from server.providers import check_provider_config


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("catalog", help="the product catalog")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    actions.add_parser(
        "sync", help="create or update the provider's Products and Prices for the recurring products (idempotent)"
    ).set_defaults(command=run_sync)


def run_sync(settings: Settings, args: argparse.Namespace) -> int:
    check_provider_config(settings, receives_webhooks=False)
    synced = with_services(settings, subscriptions.sync_catalog)
    for product_id, outcome in synced:
        print(f"{product_id}: {outcome}")
    if not synced:
        print("the catalog has no recurring products")
    return 0
