"""What every command shares: settings, the database (embedded when DATABASE_URL is unset), one set of
services per command, and errors said to an operator rather than to an agent."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import asyncpg

from server import database
from server.config import Settings, read_settings
from server.errors import PaywardenError, ProviderUnavailable, for_operator
from server.services import Services, open_services

Command = Callable[[Settings, argparse.Namespace], int]
T = TypeVar("T")


def settings_from(args: argparse.Namespace) -> Settings:
    """The environment's settings (and those of `.env`, or of the file PAYWARDEN_ENV_FILE names; empty
    for none), with --host and --port on top; a ConfigurationError naming each problem."""
    given = {name: getattr(args, name, None) for name in ("host", "port")}
    env_file = os.environ.get("PAYWARDEN_ENV_FILE", ".env") or None
    return read_settings(env_file, {name: value for name, value in given.items() if value is not None})


def with_services(settings: Settings, action: Callable[[Services], Awaitable[T]]) -> T:
    """Prepare the database, open the services, run `action` on them, close them: one command's whole life."""

    async def run() -> T:
        async with open_services(await database.prepare(settings)) as services:
            return await action(services)

    return asyncio.run(run())


def operator_message(error: PaywardenError, settings: Settings | None) -> str:
    """The error as an operator at a terminal should read it (agents get advice about idempotency keys)."""
    said = for_operator(error)
    if isinstance(error, ProviderUnavailable) and settings is not None and settings.provider == "sandbox":
        said += f". The sandbox provider is served by `paywarden up` at {settings.base_url}: is it running?"
    return said[0].upper() + said[1:]


def database_problem(error: BaseException, settings: Settings | None) -> str:
    url = settings.database_url if settings is not None else None
    return (
        f"cannot reach the database {_database_location(url)} ({_why(error)}). "
        "Check DATABASE_URL, or unset it to use the embedded PostgreSQL."
    )


def _why(error: BaseException) -> str:
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return "that database does not exist"
    if isinstance(error, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError):
        return "the server refused the user or password"
    if isinstance(error, ConnectionRefusedError):
        return "nothing is listening there"
    if isinstance(error, TimeoutError):
        return "it did not answer in time"
    return type(error).__name__


def _database_location(url: str | None) -> str:
    """Host, port and database of a URL, never its password."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or parse_qs(parts.query).get("host", ["local socket"])[0]
    return f"at {host}:{parts.port or 5432}{parts.path}"
