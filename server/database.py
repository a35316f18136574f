"""The database paywarden stands on: embedded when DATABASE_URL is unset, migrated by the role that owns
the tables, used by a role that owns nothing (so "append-only" holds in the database, not only in our code).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg

from db import roles
from db.migrate import Migration, migrate_url
from db.pool import CONNECTION_ERRORS
from server.config import Settings
from server.embedded import embedded_database_url
from server.errors import ConfigurationError

EMBEDDED_SERVER_ROLE = "paywarden_server"
"""The login role the server uses on the embedded PostgreSQL (its superuser runs the migrations)."""
DATABASE_CONNECTION_ERRORS = CONNECTION_ERRORS
"""What the driver raises when the database is not there (before any service could say so itself)."""


async def prepare(settings: Settings) -> Settings:
    """The settings with a database ready: the embedded PostgreSQL started when DATABASE_URL is unset, the
    migrations applied by the owner role, and DATABASE_URL naming the role the server runs as."""
    if settings.database_url and not settings.database_url.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError("DATABASE_URL must be a postgresql:// URL.")
    if settings.database_url:
        await migrate(settings)
        return settings
    owner = embedded_database_url(settings.embedded_pgdata)
    await migrate_url(owner)
    await _ensure_server_role(owner)
    return settings.model_copy(update={"database_url": as_role(owner, EMBEDDED_SERVER_ROLE)})


async def migrate(settings: Settings) -> list[Migration]:
    """Apply the migrations not applied yet, as PAYWARDEN_MIGRATION_DATABASE_URL's role (else DATABASE_URL's);
    several processes at once are safe (an advisory lock)."""
    url = settings.migration_database_url or settings.database_url
    if url is None:
        raise ConfigurationError("migrate needs a database URL (prepare() resolves the embedded one)")
    return await migrate_url(url)


async def refuse_owner_role(settings: Settings) -> None:
    """Refuse to serve as a superuser or as the tables' owner: either may turn the append-only triggers
    off. PAYWARDEN_ALLOW_OWNER_ROLE=true runs anyway."""
    if settings.allow_owner_role or settings.database_url is None:
        return
    connection = await asyncpg.connect(settings.database_url, statement_cache_size=0)  # a pooler may stand between
    try:
        role = await roles.connected(connection)
    finally:
        await connection.close()
    if role.superuser or role.owns_tables:
        kind = "a superuser" if role.superuser else "the owner of paywarden's tables"
        raise ConfigurationError(
            f"DATABASE_URL connects as {role.name!r}, {kind}: such a role can rewrite the audit trail and the "
            "credit ledger (it may disable their triggers). Connect as a role that owns nothing and is a member "
            f"of {roles.APP_ROLE} (GRANT {roles.APP_ROLE} TO your_role), run migrations with "
            "PAYWARDEN_MIGRATION_DATABASE_URL set to the owner, or set PAYWARDEN_ALLOW_OWNER_ROLE=true to "
            "run as this role anyway."
        )


def as_role(url: str, role: str) -> str:
    """The same database URL, connecting as another role (no password: for the embedded cluster's socket)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


async def _ensure_server_role(owner_url: str) -> None:
    connection = await asyncpg.connect(owner_url)
    try:
        await roles.ensure_login_member(connection, EMBEDDED_SERVER_ROLE)
    finally:
        await connection.close()
