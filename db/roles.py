"""What the connected database role is and may do, and the login role the embedded PostgreSQL gives the
server (a member of paywarden_app, which owns nothing)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

APP_ROLE = "paywarden_app"
"""The role migrations grant the server's privileges to (0013_least_privilege.sql)."""


@dataclass(frozen=True)
class ConnectedRole:
    name: str
    superuser: bool
    owns_tables: bool
    """It owns one of paywarden's tables, or is a member of a role that does."""


async def connected(connection: asyncpg.Connection) -> ConnectedRole:
    row = await connection.fetchrow(
        """
        SELECT current_user AS name,
               (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
               EXISTS (SELECT 1 FROM pg_tables
                        WHERE schemaname IN ('public', 'sandbox')
                          AND pg_has_role(current_user, tableowner, 'USAGE')) AS owns_tables
        """
    )
    return ConnectedRole(name=row["name"], superuser=row["superuser"], owns_tables=row["owns_tables"])


async def ensure_login_member(connection: asyncpg.Connection, login_role: str) -> None:
    """Create `login_role` (LOGIN, no password: the embedded cluster trusts its own socket) as a member of
    paywarden_app, unless it exists. Two processes at once: the loser's duplicate is ignored."""
    exists = await connection.fetchval("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", login_role)
    if exists:
        return
    try:
        await connection.execute(f'CREATE ROLE "{login_role}" LOGIN IN ROLE {APP_ROLE}')
    except (asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
        pass  # another process made it meanwhile
