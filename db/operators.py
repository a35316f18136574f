"""Operators (people who sign in to the console), their sessions, failed sign-ins, and the operator audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from server.errors import InvalidRequest


@dataclass(frozen=True, kw_only=True)
class Operator:
    id: str
    name: str
    role: str
    tenant_id: str | None
    password_hash: str
    password_is_temporary: bool
    password_set_at: datetime
    created_at: datetime
    disabled_at: datetime | None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Operator:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, kw_only=True)
class Session:
    operator: Operator
    csrf_token: str
    viewing_tenant: str | None
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class AuditRow:
    at: datetime
    operator: str
    via: str
    action: str
    subject: str | None
    tenant_id: str | None
    detail: str | None


async def insert(
    connection: asyncpg.Connection,
    *,
    operator_id: str,
    name: str,
    role: str,
    tenant_id: str | None,
    password_hash: str,
) -> Operator:
    try:
        row = await connection.fetchrow(
            """
            INSERT INTO operators (id, name, role, tenant_id, password_hash) VALUES ($1, $2, $3, $4, $5)
            RETURNING *
            """,
            operator_id,
            name,
            role,
            tenant_id,
            password_hash,
        )
    except asyncpg.UniqueViolationError:
        raise InvalidRequest(f"An operator named {name!r} already exists; pick another name.") from None
    except asyncpg.ForeignKeyViolationError:
        raise InvalidRequest(f"No tenant {tenant_id!r}; `paywarden tenants list` shows them.") from None
    return Operator.from_row(row)


async def by_name(connection: asyncpg.Connection, name: str) -> Operator | None:
    row = await connection.fetchrow("SELECT * FROM operators WHERE name = $1", name)
    return Operator.from_row(row) if row else None


async def any_operator(connection: asyncpg.Connection) -> bool:
    return await connection.fetchval("SELECT EXISTS (SELECT 1 FROM operators)")


async def listing(connection: asyncpg.Connection, tenant_id: str | None) -> list[Operator]:
    """Every operator, or a tenant's own (`tenant_id`), by name."""
    rows = await connection.fetch(
        "SELECT * FROM operators WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY name", tenant_id
    )
    return [Operator.from_row(row) for row in rows]


async def disable(connection: asyncpg.Connection, name: str) -> Operator | None:
    row = await connection.fetchrow(
        "UPDATE operators SET disabled_at = coalesce(disabled_at, now()) WHERE name = $1 RETURNING *", name
    )
    return Operator.from_row(row) if row else None


async def set_password(
    connection: asyncpg.Connection, operator_id: str, password_hash: str, *, temporary: bool, enable: bool = False
) -> Operator | None:
    """A new password hash; `enable` also lifts a disable (a reset brings a disabled operator back)."""
    row = await connection.fetchrow(
        """
        UPDATE operators SET password_hash = $2, password_is_temporary = $3, password_set_at = now(),
               disabled_at = CASE WHEN $4 THEN NULL ELSE disabled_at END
         WHERE id = $1 RETURNING *
        """,
        operator_id,
        password_hash,
        temporary,
        enable,
    )
    return Operator.from_row(row) if row else None


async def rehash(connection: asyncpg.Connection, operator_id: str, old_hash: str, new_hash: str) -> None:
    """Store a hash made with today's parameters, unless the password changed meanwhile."""
    await connection.execute(
        "UPDATE operators SET password_hash = $3 WHERE id = $1 AND password_hash = $2", operator_id, old_hash, new_hash
    )


# --- Sessions -------------------------------------------------------------------------------------


async def start_session(
    connection: asyncpg.Connection, *, token_sha256: bytes, operator_id: str, csrf_token: str, address: str | None
) -> None:
    await connection.execute(
        "INSERT INTO operator_sessions (token_sha256, operator_id, csrf_token, address) VALUES ($1, $2, $3, $4)",
        token_sha256,
        operator_id,
        csrf_token,
        address,
    )


async def touch_session(
    connection: asyncpg.Connection, token_sha256: bytes, *, idle_seconds: float, max_seconds: float
) -> Session | None:
    """The live session of an enabled operator, seen now (idle expiry counts from here); None when it
    does not exist, has been idle too long, is too old, or its operator is disabled."""
    row = await connection.fetchrow(
        """
        UPDATE operator_sessions s SET last_seen_at = now()
          FROM operators o
         WHERE s.token_sha256 = $1 AND o.id = s.operator_id AND o.disabled_at IS NULL
           AND s.last_seen_at > now() - make_interval(secs => $2)
           AND s.created_at > now() - make_interval(secs => $3)
        RETURNING o.*, s.csrf_token, s.viewing_tenant, s.created_at AS session_created_at
        """,
        token_sha256,
        idle_seconds,
        max_seconds,
    )
    if row is None:
        return None
    return Session(
        operator=Operator.from_row(row),
        csrf_token=row["csrf_token"],
        viewing_tenant=row["viewing_tenant"],
        created_at=row["session_created_at"],
    )


async def end_session(connection: asyncpg.Connection, token_sha256: bytes) -> None:
    await connection.execute("DELETE FROM operator_sessions WHERE token_sha256 = $1", token_sha256)


async def end_sessions_of(connection: asyncpg.Connection, operator_id: str, *, keeping: bytes | None = None) -> None:
    await connection.execute(
        "DELETE FROM operator_sessions WHERE operator_id = $1 AND token_sha256 IS DISTINCT FROM $2",
        operator_id,
        keeping,
    )


async def set_viewing_tenant(connection: asyncpg.Connection, token_sha256: bytes, tenant_id: str | None) -> None:
    try:
        await connection.execute(
            "UPDATE operator_sessions SET viewing_tenant = $2 WHERE token_sha256 = $1", token_sha256, tenant_id
        )
    except asyncpg.ForeignKeyViolationError:
        raise InvalidRequest(f"No tenant {tenant_id!r}.") from None


async def forget_expired_sessions(connection: asyncpg.Connection, *, idle_seconds: float, max_seconds: float) -> None:
    await connection.execute(
        """
        DELETE FROM operator_sessions
         WHERE last_seen_at < now() - make_interval(secs => $1) OR created_at < now() - make_interval(secs => $2)
        """,
        idle_seconds,
        max_seconds,
    )


# --- Failed sign-ins (the rate limit) -------------------------------------------------------------


async def lock_subjects(connection: asyncpg.Connection, subjects: list[str]) -> None:
    """Serialise sign-in attempts for these subjects (a name, an address) across processes, until the
    transaction ends; taken in sorted order, so two attempts never wait on each other in a cycle."""
    for subject in sorted(subjects):
        await connection.execute("SELECT pg_advisory_xact_lock(hashtextextended('signin:' || $1, 0))", subject)


async def recent_failures(connection: asyncpg.Connection, subjects: list[str], within_seconds: float) -> dict[str, int]:
    """Failed sign-ins per subject within the last `within_seconds` (counted per minute)."""
    rows = await connection.fetch(
        """
        SELECT subject, sum(failures)::int AS failures FROM operator_signin_failures
         WHERE subject = ANY($1::text[]) AND minute > now() - make_interval(secs => $2)
         GROUP BY subject
        """,
        subjects,
        within_seconds,
    )
    return {row["subject"]: row["failures"] for row in rows}


async def count_failure(connection: asyncpg.Connection, subjects: list[str]) -> None:
    await connection.execute(
        """
        INSERT INTO operator_signin_failures (subject, minute, failures)
        SELECT subject, date_trunc('minute', now()), 1 FROM unnest($1::text[]) AS subject
        ON CONFLICT (subject, minute) DO UPDATE SET failures = operator_signin_failures.failures + 1
        """,
        subjects,
    )


async def forgive_failure(connection: asyncpg.Connection, subjects: list[str]) -> None:
    """Take back one counted failure per subject (an attempt counted before its password was checked, that
    turned out right)."""
    await connection.execute(
        """
        UPDATE operator_signin_failures f SET failures = f.failures - 1
          FROM (SELECT subject, max(minute) AS minute FROM operator_signin_failures
                 WHERE subject = ANY($1::text[]) AND failures > 0 GROUP BY subject) newest
         WHERE f.subject = newest.subject AND f.minute = newest.minute
        """,
        subjects,
    )


async def forget_old_failures(connection: asyncpg.Connection, older_than_seconds: float) -> None:
    await connection.execute(
        "DELETE FROM operator_signin_failures WHERE minute < now() - make_interval(secs => $1)", older_than_seconds
    )


# --- What operators did ---------------------------------------------------------------------------


async def audit(
    connection: asyncpg.Connection,
    *,
    operator: str,
    via: str,
    action: str,
    subject: str | None,
    tenant_id: str | None,
    detail: str | None,
) -> None:
    await connection.execute(
        """
        INSERT INTO operator_audit (operator, via, action, subject, tenant_id, detail)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        operator,
        via,
        action,
        subject,
        tenant_id,
        detail,
    )


async def audit_log(connection: asyncpg.Connection, tenant_id: str | None, limit: int) -> list[AuditRow]:
    """The newest entries: a tenant's (`tenant_id`), or every one."""
    rows = await connection.fetch(
        """
        SELECT at, operator, via, action, subject, tenant_id, detail FROM operator_audit
         WHERE $1::text IS NULL OR tenant_id = $1 ORDER BY id DESC LIMIT $2
        """,
        tenant_id,
        limit,
    )
    return [AuditRow(**dict(row)) for row in rows]


# --- Server secrets -------------------------------------------------------------------------------


async def server_secret(connection: asyncpg.Connection, name: str, candidate: str) -> str:
    """The secret of this name, created with `candidate` by whichever process asks first."""
    await connection.execute(
        "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, candidate
    )
    return await connection.fetchval("SELECT value FROM server_secrets WHERE name = $1", name)
