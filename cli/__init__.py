"""`paywarden …`: the composition root. Each command opens one set of services and calls them; `up` and
`mcp` also build the adapters (the MCP server in tools/, the HTTP app in webapp/) over those services.

One module per group of commands; each registers its own subcommands.
"""

from __future__ import annotations

import argparse
import logging
import sys

import asyncpg
from pydantic import ValidationError

from cli import (
    catalog,
    customers,
    endpoints,
    finance,
    inbox,
    keys,
    maintenance,
    operators,
    payments,
    running,
    sandbox,
    tenants,
)
from cli.common import Command, database_problem, operator_message, settings_from
from server import logs
from server.database import DATABASE_CONNECTION_ERRORS
from server.errors import ConfigurationError, PaywardenError

logger = logging.getLogger("paywarden")
GROUPS = (
    running,
    maintenance,
    keys,
    tenants,
    customers,
    operators,
    payments,
    inbox,
    endpoints,
    sandbox,
    catalog,
    finance,
)


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit status (0 done, 1 refused or failed, 2 cannot start)."""
    args = parser().parse_args(argv)
    logs.configure("text")
    settings = None
    try:
        settings = settings_from(args)
        logs.configure(settings.log_format)
        command: Command = args.command
        return command(settings, args)
    except DATABASE_CONNECTION_ERRORS as error:
        print(f"paywarden: {database_problem(error, settings)}", file=sys.stderr)
    except asyncpg.PostgresError as error:
        print(f"paywarden: the database refused: {error.__class__.__name__}: {error}", file=sys.stderr)
    except (ConfigurationError, ValidationError) as error:
        shown = error.message if isinstance(error, PaywardenError) else str(error)
        for problem in shown.splitlines():
            print(f"paywarden: configuration problem: {problem}", file=sys.stderr)
    except PaywardenError as error:
        print(f"paywarden: {operator_message(error, settings)}", file=sys.stderr)
        return 1
    return 2


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="paywarden", description="Payments for LLM agents, safely.")
    commands = top.add_subparsers(required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(commands)
    return top
