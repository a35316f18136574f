"""What every adapter stands on: the pool, the provider, the catalog and the settings, opened once per
process by `open_services` and handed to the MCP server, the HTTP app and the CLI alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import asyncpg

from db.pool import connection, create_pool
from server.catalog import Catalog, load_catalog
from server.config import Settings
from server.errors import ConfigurationError
from server.key_cache import KeyCache
from server.providers import Provider, StandardWebhookVerifier, credentials, open_provider, sandbox
from server.rate_limits import RequestCounter, WrongKeys


@dataclass(frozen=True)
class Services:
    pool: asyncpg.Pool
    provider: Provider
    catalog: Catalog
    settings: Settings
    sandbox: sandbox.Sandbox | None = None
    """The sandbox provider this process serves (at /sandbox), when it serves one."""
    standard_webhooks: StandardWebhookVerifier | None = None
    """Verifies /webhooks/standard, when PAYWARDEN_STANDARD_WEBHOOK_SECRET is set."""
    keys: KeyCache = field(default_factory=KeyCache)
    """Active API keys this process has seen; used only while it hears revocations (key_cache.listening)."""
    requests: RequestCounter = field(default_factory=RequestCounter)
    """Requests per key per minute, for the rate limit."""
    wrong_keys: WrongKeys = field(default_factory=WrongKeys)
    """Addresses that keep sending wrong keys, paused for a minute."""

    async def ping_database(self) -> None:
        """Return when the database answers; DatabaseUnavailable when it does not."""
        async with connection(self.pool) as conn:
            await conn.fetchval("SELECT 1")


@asynccontextmanager
async def open_services(settings: Settings, *, serve_sandbox: bool = False) -> AsyncIterator[Services]:
    """Open everything once. `serve_sandbox` (what `paywarden up` asks for) also runs the sandbox provider
    when it is the configured one: its API and pages, and its webhook delivery."""
    if settings.database_url is None:
        raise ConfigurationError("open_services needs settings.database_url (server.database.prepare resolves it)")
    catalog = load_catalog(settings.catalog_path)
    standard = settings.standard_webhook_secret
    verifier = StandardWebhookVerifier(standard.get_secret_value()) if standard else None
    async with AsyncExitStack() as stack:
        # min_size=0: a running server answers "database unavailable" while PostgreSQL is down.
        pool = await create_pool(settings.database_url, min_size=0, pooler=settings.db_pooler)
        stack.push_async_callback(pool.close)
        secrets = await credentials(settings, pool)
        provider = open_provider(settings, secrets)
        stack.push_async_callback(provider.close)
        served = None
        if serve_sandbox and settings.provider == "sandbox":
            served = await stack.enter_async_context(sandbox.run_sandbox(settings, pool, secrets.webhook_secret or ""))
        yield Services(
            pool=pool, provider=provider, catalog=catalog, settings=settings, sandbox=served, standard_webhooks=verifier
        )
