"""API keys: issued once as `pwk_…`, stored as a SHA-256 only, checked on every HTTP request, counted
per minute for the rate limit. The MCP adapter's token verifier and the CLI's `keys` commands call these."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from db import api_keys, reports
from db.api_keys import ApiKey
from db.pool import connection, transaction
from server import key_cache
from server.config import MAX_RATE_PER_MINUTE
from server.errors import InvalidKey, InvalidRequest, NotFound, PaywardenError
from server.money import MAX_TOTAL_MINOR, format_amount, normalize_currency
from server.services import Services
from server.tenancy import APPROVERS, SCOPES, Approver, Caller, Scope
from server.tenants import check_tenant_id

KEY_PREFIX = "pwk_"
MAX_KEY_LENGTH = 200
FIRST_KEY_LOCK = 7_461_226_503
"""Two first starts of `paywarden up` on one database make one first key."""


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str
    """The key itself: shown once, never stored."""
    tenant_created: bool = False


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_scopes(text: str) -> list[Scope]:
    scopes = sorted({scope.strip() for scope in text.split(",") if scope.strip()})
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if not scopes or unknown:
        raise InvalidRequest(f"Scopes must be a comma-separated choice of {', '.join(SCOPES)}; got {text!r}.")
    return [scope for scope in SCOPES if scope in scopes]


async def issue(
    services: Services,
    *,
    tenant_id: str,
    name: str,
    scopes: list[Scope],
    rate_per_minute: int | None = None,
    budget_minor: int | None = None,
    budget_currency: str | None = None,
    approval: Approver = "operator",
) -> IssuedKey:
    """A new key for the tenant, created first if it is new. The caller shows `secret` to the person once.
    `approval`: who approves its charges that need approval (an operator, unless the client is trusted)."""
    check_tenant_id(tenant_id)
    rate = services.settings.rate_limit_per_minute if rate_per_minute is None else rate_per_minute
    _check_key_settings(name, rate, budget_minor, budget_currency)
    currency = normalize_currency(budget_currency) if budget_currency is not None else None
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    async with transaction(services.pool) as conn:
        tenant_created = await api_keys.ensure_tenant(conn, tenant_id, tenant_id)
        key = await api_keys.insert(
            conn,
            key_id="key_" + secrets.token_hex(8),
            tenant_id=tenant_id,
            name=name,
            secret_sha256=secret_hash(secret),
            shown_prefix=secret[:10] + "…",
            scopes=list(scopes),
            budget_minor=budget_minor,
            budget_currency=currency,
            rate_per_minute=rate,
            approval=approval,
        )
    return IssuedKey(key, secret, tenant_created)


def _check_key_settings(name: str, rate: int, budget_minor: int | None, budget_currency: str | None) -> None:
    if not name.strip():
        raise InvalidRequest("A key needs a name saying what it is for, e.g. the agent's name.")
    if not 0 < rate <= MAX_RATE_PER_MINUTE:
        raise InvalidRequest(f"--rate-per-minute must be positive and at most {MAX_RATE_PER_MINUTE}; got {rate}.")
    if budget_minor is not None and not 0 < budget_minor <= MAX_TOTAL_MINOR:
        raise InvalidRequest(
            f"--budget-minor must be a positive number of minor units, at most {MAX_TOTAL_MINOR} "
            f"(e.g. 10000 for 100.00 USD); got {budget_minor}."
        )
    if (budget_minor is None) != (budget_currency is None):
        raise InvalidRequest("A key budget needs both an amount in minor units and its currency.")


def parse_approval(text: str) -> Approver:
    if text not in APPROVERS:
        raise InvalidRequest(f"--approval must be client or operator; got {text!r}.")
    return "client" if text == "client" else "operator"


async def issue_first_key(services: Services, *, tenant_id: str) -> IssuedKey | None:
    """On the very first start, a key with every scope for local use, so the HTTP endpoint can be used at
    once; the person at the MCP client approves its charges (client approval), as `paywarden up` says."""
    async with transaction(services.pool) as conn:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", FIRST_KEY_LOCK)
        if await api_keys.any_key(conn):
            return None
        return await issue(services, tenant_id=tenant_id, name="first key", scopes=list(SCOPES), approval="client")


async def listing(services: Services, tenant_id: str | None = None) -> list[ApiKey]:
    async with connection(services.pool) as conn:
        return await api_keys.listing(conn, tenant_id)


async def revoke(services: Services, key_id: str) -> ApiKey:
    """Revoke the key; this returns once every serving process has been sent the revocation (key_cache)."""
    async with key_cache.hearing_revocation(services.settings.listen_url, key_id[:64]) as announced:
        async with transaction(services.pool) as conn:
            key = await api_keys.revoke(conn, key_id)
        if key is not None:
            await announced()
    if key is None:
        raise PaywardenError(f"No key {key_id!r}; `paywarden keys list` shows the ids.")
    return key


async def find(services: Services, key_id: str, tenant_id: str | None = None) -> ApiKey:
    """The key, if it belongs to `tenant_id` (None: any tenant); NotFound otherwise."""
    async with connection(services.pool) as conn:
        key = await api_keys.get(conn, key_id[:64])
    if key is None or (tenant_id is not None and key.tenant_id != tenant_id):
        raise NotFound(f"No key {key_id!r}; the API keys page (or `paywarden keys list`) shows the ids.")
    return key


async def spend_last_day(services: Services, tenant_id: str | None = None) -> dict[str, dict[str, int]]:
    """What each key charged in the last 24 hours, per currency, counted as its budget counts it."""
    async with connection(services.pool) as conn:
        rows = await reports.key_spend_last_day(conn, tenant_id)
    spent: dict[str, dict[str, int]] = {}
    for row in rows:
        spent.setdefault(row.api_key_id, {})[row.currency] = row.charged_minor
    return spent


def describe_budget(key: ApiKey) -> str | None:
    """`100.00 USD per 24 hours`, or None for a key without a budget."""
    if key.budget_minor is None or key.budget_currency is None:
        return None
    return f"{format_amount(key.budget_minor, key.budget_currency)} per 24 hours"


async def find_active(services: Services, secret: str) -> ApiKey | None:
    """The key this secret is, if it is one and not revoked: from this process's cache while it hears
    every revocation (server/key_cache.py), else from the database."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > MAX_KEY_LENGTH:
        return None
    digest = secret_hash(secret)
    cached = services.keys.get(digest)
    if cached is not None:
        return cached
    generation = services.keys.generation
    async with connection(services.pool) as conn:
        key = await api_keys.active_by_secret(conn, digest)
    if key is not None:
        services.keys.put(digest, key, generation)
    return key


async def authenticate(services: Services, secret: str | None, address: str) -> ApiKey:
    """The active key of an HTTP request, counted against its rate: InvalidKey for a wrong or revoked one
    (the address is paused after too many), TooManyWrongKeys while paused, RateLimited beyond the rate."""
    services.wrong_keys.refuse_if_paused(address)
    key = await find_active(services, secret) if secret else None
    if key is None:
        services.wrong_keys.note(address)
        raise InvalidKey()
    await count_request(services, key)
    return key


async def count_request(services: Services, key: ApiKey) -> None:
    """Count one HTTP request against the key's per-minute rate (shared across processes through the
    database, within server/rate_limits.py's tolerance); RateLimited, with when to retry, beyond it."""
    await services.requests.admit(services.pool, key)


async def require_active(conn: asyncpg.Connection, caller: Caller) -> None:
    """In a deciding transaction: the caller's key must still be valid now (a cache may lag a revocation
    by the moment its notification takes; money never does)."""
    if caller.key_id is not None and not await api_keys.is_active(conn, caller.key_id):
        raise InvalidKey()


def caller_of(key: ApiKey) -> Caller:
    return Caller(
        tenant_id=key.tenant_id,
        key_id=key.id,
        scopes=frozenset(key.scopes),
        budget_minor=key.budget_minor,
        budget_currency=key.budget_currency,
        approval=parse_approval(key.approval),
    )


@contextlib.asynccontextmanager
async def cached_while_listening(services: Services) -> AsyncIterator[None]:
    """While the block runs (a serving process), cache keys, hearing every revocation on a connection of
    its own (PAYWARDEN_LISTEN_DATABASE_URL, else DATABASE_URL; none behind a transaction pooler)."""
    url = services.settings.listen_url
    if url is None:
        yield
        return
    async with key_cache.listening(services.keys, url):
        yield
