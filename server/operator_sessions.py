"""Signing operators in and out of the console.

- Sign-in is rate-limited per name and per client address, counted in the database (per minute, over the
  last 15 minutes) so the limit holds across every process on one database, like the API keys' rate limit.
  An attempt is counted *before* its password is checked, under a lock per name and address, and taken back
  when the password was right: concurrent guesses cannot slip past the limit.
- A session is a random token; the database keeps only its SHA-256, with the operator, a CSRF token, when it
  started and when it was last used. It ends after `PAYWARDEN_SESSION_IDLE_MINUTES` unused, after
  `PAYWARDEN_SESSION_MAX_HOURS` whatever happens, at sign-out, and when the operator is disabled or reset.
- An operator who signed in with a one-time password must choose their own before anything else.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from db import api_keys as tenant_rows
from db import operators
from db.operators import Session
from db.pool import connection, transaction
from server.errors import InvalidRequest, NotFound, SignInRefused, SignInThrottled
from server.operators import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    Acting,
    SignedIn,
    audit,
    hash_of_nobody,
    hash_password,
    needs_rehash,
    password_matches,
)
from server.services import Services

FAILURE_WINDOW_SECONDS = 15 * 60
SIGNING_KEY_NAME = "console_cookie_key"


@dataclass(frozen=True)
class NewSession:
    token: str
    """The session's secret (the cookie carries it, signed); the database keeps only its hash."""
    signed_in: SignedIn


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def signing_key(services: Services) -> str:
    """PAYWARDEN_SECRET_KEY, else a key generated once for this database and kept in it."""
    if services.settings.secret_key is not None:
        return services.settings.secret_key.get_secret_value()
    async with transaction(services.pool) as conn:
        return await operators.server_secret(conn, SIGNING_KEY_NAME, secrets.token_urlsafe(32))


def idle_seconds(services: Services) -> float:
    return services.settings.session_idle_minutes * 60.0


def max_seconds(services: Services) -> float:
    return services.settings.session_max_hours * 3600.0


async def sign_in(services: Services, name: str, password: str, address: str | None) -> NewSession:
    """A new session for the operator; SignInRefused for a wrong name or password or a disabled operator (one
    answer for all three), SignInThrottled once the name or the address has failed too often."""
    subjects = _subjects(name, address)
    await _count_attempt(services, subjects)
    async with connection(services.pool) as conn:
        operator = await operators.by_name(conn, name.strip().lower()[:64])
    stored = operator.password_hash if operator else hash_of_nobody()
    if not await password_matches(stored, password) or operator is None or operator.disabled_at is not None:
        raise SignInRefused()
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    rehashed = await hash_password(password) if needs_rehash(operator.password_hash) else None
    async with transaction(services.pool) as conn:
        await operators.forgive_failure(conn, subjects)
        if rehashed:
            await operators.rehash(conn, operator.id, operator.password_hash, rehashed)
        await operators.start_session(
            conn, token_sha256=token_hash(token), operator_id=operator.id, csrf_token=csrf, address=address
        )
        await audit(conn, Acting(operator.name, "console"), "sign_in", operator.name, operator.tenant_id, address)
    session = Session(operator=operator, csrf_token=csrf, viewing_tenant=None, created_at=datetime.now(UTC))
    return NewSession(token, _signed_in(session))


def _subjects(name: str, address: str | None) -> list[str]:
    return [f"name:{name.strip().lower()[:64]}", f"address:{address or 'unknown'}"]


async def _count_attempt(services: Services, subjects: list[str]) -> None:
    """Count this attempt as a failure up front (sign_in takes it back on success), unless the limit is reached."""
    settings = services.settings
    limits = {subjects[0]: settings.signin_failures_per_name, subjects[1]: settings.signin_failures_per_address}
    async with transaction(services.pool) as conn:
        await operators.lock_subjects(conn, subjects)
        failures = await operators.recent_failures(conn, subjects, FAILURE_WINDOW_SECONDS)
        if any(failures.get(subject, 0) >= limit for subject, limit in limits.items()):
            raise SignInThrottled(FAILURE_WINDOW_SECONDS)
        await operators.count_failure(conn, subjects)


async def resume(services: Services, token: str) -> SignedIn | None:
    """The operator of a live session (and the session is now freshly used); None when it is over."""
    async with connection(services.pool) as conn:
        session = await operators.touch_session(
            conn, token_hash(token), idle_seconds=idle_seconds(services), max_seconds=max_seconds(services)
        )
    return _signed_in(session) if session else None


def _signed_in(session: Session) -> SignedIn:
    operator = session.operator
    return SignedIn(
        name=operator.name,
        role=operator.role,  # type: ignore[arg-type]  # the column's CHECK keeps it to ROLES
        tenant_id=operator.tenant_id,
        viewing_tenant=session.viewing_tenant if operator.tenant_id is None else None,
        csrf_token=session.csrf_token,
        must_choose_password=operator.password_is_temporary,
    )


async def sign_out(services: Services, token: str) -> None:
    async with transaction(services.pool) as conn:
        await operators.end_session(conn, token_hash(token))


async def choose_password(
    services: Services, token: str, signed_in: SignedIn, current: str, new: str, address: str | None
) -> None:
    """Replace the operator's password (the one-time one, or their own); other sessions of theirs end. The
    current password is checked under the sign-in rate limit (a session left open must not let anyone guess it)."""
    check_new_password(new, current)
    subjects = _subjects(signed_in.name, address)
    await _count_attempt(services, subjects)
    async with connection(services.pool) as conn:
        operator = await operators.by_name(conn, signed_in.name)
    if operator is None or not await password_matches(operator.password_hash, current):
        raise InvalidRequest("The current password is not right; type the password you signed in with.")
    hashed = await hash_password(new)
    async with transaction(services.pool) as conn:
        await operators.forgive_failure(conn, subjects)
        await operators.set_password(conn, operator.id, hashed, temporary=False)
        await operators.end_sessions_of(conn, operator.id, keeping=token_hash(token))
        await audit(conn, signed_in.acting, "password.change", operator.name, operator.tenant_id, None)


def check_new_password(new: str, current: str) -> None:
    if len(new) < MIN_PASSWORD_LENGTH or len(new) > MAX_PASSWORD_LENGTH:
        raise InvalidRequest(
            f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters (a few words make a good one)."
        )
    if new == current:
        raise InvalidRequest("Choose a password other than the current one.")


async def view_tenant(services: Services, token: str, signed_in: SignedIn, tenant_id: str | None) -> None:
    """A platform operator's tenant switcher: lists show this tenant only (None: every tenant)."""
    if not signed_in.is_platform:
        raise InvalidRequest(f"Operator {signed_in.name!r} sees only tenant {signed_in.tenant_id!r}.")
    async with transaction(services.pool) as conn:
        if tenant_id is not None and not await tenant_rows.tenant_exists(conn, tenant_id):
            raise NotFound(f"No tenant {tenant_id!r}.")
        await operators.set_viewing_tenant(conn, token_hash(token), tenant_id)


async def forget_expired(services: Services) -> None:
    """Housekeeping (the reconciler's pass runs it): ended sessions and failures older than the window."""
    async with transaction(services.pool) as conn:
        await operators.forget_expired_sessions(
            conn, idle_seconds=idle_seconds(services), max_seconds=max_seconds(services)
        )
        await operators.forget_old_failures(conn, FAILURE_WINDOW_SECONDS)
