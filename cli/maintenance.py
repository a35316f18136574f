"""`paywarden migrate` and `paywarden reconcile`."""

from __future__ import annotations

import argparse
import asyncio

from cli.common import with_services
from server import database
from server.config import Settings
from server.providers import check_provider_config
from server.reconciler import reconcile_once


def register(commands: argparse._SubParsersAction) -> None:
    commands.add_parser("migrate", help="apply database migrations").set_defaults(command=run_migrate)
    commands.add_parser("reconcile", help="bring unfinished payments to the provider's truth, once").set_defaults(
        command=run_reconcile
    )


def run_migrate(settings: Settings, args: argparse.Namespace) -> int:
    applied = asyncio.run(_migrate(settings))
    print(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m.version:04d}_{m.name}" for m in applied))
    return 0


def run_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    check_provider_config(settings, receives_webhooks=False)
    report = with_services(settings, reconcile_once)
    for step, how in report.steps.items():
        print(f"{step}: {how}")
    print(report.summary())
    for problem in report.errors:
        print(f"  error: {problem}")
    for note in report.attention:
        print(f"  needs an operator: {note}")
    for payment_id in report.needs_operator:
        print(f"  {payment_id}: recorded over 23 hours ago and never confirmed by the provider; check it there")
    return 1 if report.errors else 0


async def _migrate(settings: Settings) -> list:
    """The embedded database is migrated as it is prepared; an external one by its owner role."""
    if settings.database_url is None:
        await database.prepare(settings)
        return []
    return await database.migrate(settings)
