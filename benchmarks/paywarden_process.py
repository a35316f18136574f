"""`paywarden up` as the benchmarks run it: a process of its own on a scratch database, as a role that owns
nothing, with nothing in the background (no reconciler, no webhook delivery) but what is measured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from benchmarks.harness import ScratchDatabase, free_port, server_process
from server import api_keys
from server.config import MAX_RATE_PER_MINUTE, Settings
from server.services import open_services
from server.tenancy import DEFAULT_TENANT, SCOPES

WEBHOOK_SECRET = "whsec_benchmark_secret"


@asynccontextmanager
async def paywarden_up(database: ScratchDatabase) -> AsyncIterator[str]:
    """Its base URL."""
    async with paywarden_process(database) as (base, _pid):
        yield base


@asynccontextmanager
async def paywarden_process(database: ScratchDatabase) -> AsyncIterator[tuple[str, int]]:
    """Its base URL and process id."""
    port = free_port()
    env = {
        "DATABASE_URL": database.server_url,
        "PAYWARDEN_MIGRATION_DATABASE_URL": database.owner_url,
        "PAYWARDEN_PORT": str(port),
        "PAYWARDEN_ENV_FILE": "",
        "PAYWARDEN_RECONCILE_INTERVAL_SECONDS": "0",
        "PAYWARDEN_SANDBOX_DELIVER_WEBHOOKS": "false",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PAYWARDEN_LOG_FORMAT": "json",
    }
    base = f"http://127.0.0.1:{port}"
    async with server_process(["-m", "cli", "up"], env, f"{base}/readyz") as pid:
        yield base, pid


async def new_key(database: ScratchDatabase) -> str:
    """A key with every scope and a rate no benchmark reaches."""
    settings = Settings(_env_file=None, database_url=database.server_url, port=free_port())
    async with open_services(settings) as services:
        issued = await api_keys.issue(
            services, tenant_id=DEFAULT_TENANT, name="bench", scopes=list(SCOPES), rate_per_minute=MAX_RATE_PER_MINUTE
        )
    return issued.secret
