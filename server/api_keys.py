"""API keys: issued once as `pwk_…`, stored as a SHA-256 only, checked on every HTTP MCP request.

`ApiKeyVerifier` is the SDK's auth seam (`TokenVerifier`): the MCP endpoint answers 401 with
`WWW-Authenticate` when it returns None, and a tool reads the caller from the token it returned.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from mcp.server.auth.provider import AccessToken

from db import api_keys
from db.api_keys import ApiKey
from db.pool import connection
from server.errors import InvalidRequest
from server.money import normalize_currency
from server.tenancy import SCOPES

KEY_PREFIX = "pwk_"
TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    secret: str
    """The key itself: shown once, never stored."""


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_scopes(text: str) -> list[str]:
    scopes = sorted({scope.strip() for scope in text.split(",") if scope.strip()})
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if not scopes or unknown:
        raise InvalidRequest(f"Scopes must be a comma-separated choice of {', '.join(SCOPES)}; got {text!r}.")
    return scopes


async def issue(
    conn: asyncpg.Connection,
    *,
    tenant_id: str,
    name: str,
    scopes: list[str],
    rate_per_minute: int,
    budget_minor: int | None = None,
    budget_currency: str | None = None,
) -> tuple[IssuedKey, bool]:
    """A new key for the tenant, created first if it is new; and whether it was. The caller shows
    `secret` to the person once."""
    check_tenant_id(tenant_id)
    if (budget_minor is None) != (budget_currency is None):
        raise InvalidRequest("A key budget needs both an amount in minor units and its currency.")
    if budget_currency is not None:
        budget_currency = normalize_currency(budget_currency)
    tenant_created = await api_keys.ensure_tenant(conn, tenant_id, tenant_id)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = await api_keys.insert(
        conn,
        key_id="key_" + secrets.token_hex(8),
        tenant_id=tenant_id,
        name=name,
        secret_sha256=secret_hash(secret),
        shown_prefix=secret[:10] + "…",
        scopes=scopes,
        budget_minor=budget_minor,
        budget_currency=budget_currency,
        rate_per_minute=rate_per_minute,
    )
    return IssuedKey(key, secret), tenant_created


async def find_active(pool: asyncpg.Pool, secret: str) -> ApiKey | None:
    if not secret.startswith(KEY_PREFIX) or len(secret) > MAX_KEY_LENGTH:
        return None
    async with connection(pool) as conn:
        return await api_keys.active_by_secret(conn, secret_hash(secret))


class ApiKeyVerifier:
    """Bearer `pwk_…` keys → the SDK's AccessToken; unknown, revoked or malformed keys → None (401)."""

    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool

    async def verify_token(self, token: str) -> AccessToken | None:
        key = await find_active(self._pool(), token)
        if key is None:
            return None
        return AccessToken(
            token=token,
            client_id=key.id,
            scopes=list(key.scopes),
            claims={
                "tenant_id": key.tenant_id,
                "budget_minor": key.budget_minor,
                "budget_currency": key.budget_currency,
            },
        )


def check_tenant_id(tenant_id: str) -> None:
    if not TENANT_ID.fullmatch(tenant_id):
        raise InvalidRequest(
            "A tenant id is 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit."
        )
