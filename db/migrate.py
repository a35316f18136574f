"""Apply the numbered `.sql` files in `db/migrations/` in order, once each, under an advisory lock."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from server.errors import ConfigurationError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATION_LOCK_KEY = 7_461_226_501  # any constant shared by every paywarden process
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def discover_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise RuntimeError(f"migration file name not of the form NNNN_name.sql: {path.name}")
        migrations.append(Migration(int(match[1]), match[2], path))
    return migrations


async def migrate(connection: asyncpg.Connection) -> list[Migration]:
    """Apply pending migrations; returns the ones applied. Safe to run from several processes at once."""
    await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await _ensure_history_table(connection)
        applied = await _applied_versions(connection)
        pending = [m for m in discover_migrations() if m.version not in applied]
        for migration in pending:
            await _apply(connection, migration)
        return pending
    except asyncpg.InsufficientPrivilegeError:
        role = await connection.fetchval("SELECT current_user")
        raise ConfigurationError(
            f"The database role {role!r} may not change the schema, and migrations are pending. Set "
            "PAYWARDEN_MIGRATION_DATABASE_URL to the role that owns paywarden's tables (it runs the migrations)."
        ) from None
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def migrate_url(database_url: str) -> list[Migration]:
    connection = await asyncpg.connect(database_url)
    try:
        return await migrate(connection)
    finally:
        await connection.close()


async def _ensure_history_table(connection: asyncpg.Connection) -> None:
    if await connection.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL"):
        return  # (a server role that owns nothing may not even say CREATE ... IF NOT EXISTS)
    await connection.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    int PRIMARY KEY,
            name       text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


async def _applied_versions(connection: asyncpg.Connection) -> set[int]:
    rows = await connection.fetch("SELECT version FROM schema_migrations")
    return {row["version"] for row in rows}


async def _apply(connection: asyncpg.Connection, migration: Migration) -> None:
    async with connection.transaction():
        await connection.execute(migration.path.read_text(encoding="utf-8"))
        await connection.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            migration.version,
            migration.name,
        )
