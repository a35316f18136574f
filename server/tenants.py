"""Tenants (merchant accounts): created, listed, and given a webhook endpoint of their own."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from db import api_keys
from db.pool import connection, transaction
from server.errors import InvalidRequest, NotFound
from server.services import Services

TENANT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_SECRET_CHARACTERS = re.compile(r"[A-Za-z0-9_+/=-]*")
STRIPE_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9_+/=-]{32,}")
"""What Stripe's dashboard and `stripe listen` give: whsec_ and at least 32 letters and digits."""


@dataclass(frozen=True)
class TenantSummary:
    id: str
    name: str
    created_at: datetime
    active_keys: int
    has_webhook_endpoint: bool


def check_tenant_id(tenant_id: str) -> None:
    if not TENANT_ID.fullmatch(tenant_id):
        raise InvalidRequest(
            "A tenant id is 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit."
        )


async def create(services: Services, tenant_id: str, name: str | None = None) -> bool:
    """True when the tenant was created now, False when it already existed."""
    check_tenant_id(tenant_id)
    async with transaction(services.pool) as conn:
        return await api_keys.ensure_tenant(conn, tenant_id, name or tenant_id)


async def exists(services: Services, tenant_id: str) -> bool:
    async with connection(services.pool) as conn:
        return await api_keys.tenant_exists(conn, tenant_id)


async def require_exists(services: Services, tenant_id: str | None) -> None:
    """A tenant named by an operator (a report, an export) must exist: a typo would otherwise read nothing."""
    if tenant_id is not None and not await exists(services, tenant_id):
        raise InvalidRequest(f"There is no tenant {tenant_id!r}; `paywarden tenants list` shows them.", param="tenant")


async def listing(services: Services) -> list[TenantSummary]:
    async with connection(services.pool) as conn:
        rows = await api_keys.tenants(conn)
    return [TenantSummary(**dict(row)) for row in rows]


async def set_webhook_secret(services: Services, tenant_id: str, secret: str | None) -> None:
    """The secret(s) the tenant's own endpoint /webhooks/stripe/<tenant> verifies; None closes it."""
    if secret is not None:
        _check_webhook_secrets(secret)
    async with transaction(services.pool) as conn:
        found = await api_keys.set_webhook_secret(conn, tenant_id, secret)
    if not found:
        raise NotFound(f"No tenant {tenant_id!r}; `paywarden tenants list` shows them.")


def _check_webhook_secrets(secret: str) -> None:
    for part in (part.strip() for part in secret.split(",")):
        if STRIPE_WEBHOOK_SECRET.fullmatch(part):
            continue
        problem = _what_is_wrong_with(part)
        raise InvalidRequest(
            f"A Stripe webhook secret starts with whsec_ and has at least 32 letters and digits after it; {problem}. "
            "Copy the endpoint's signing secret from the Stripe dashboard (or what `stripe listen` prints); "
            "give several, comma-separated, to rotate."
        )


def _what_is_wrong_with(part: str) -> str:
    """Said without repeating the secret."""
    if not part:
        return "one of those given is empty (a comma too many?)"
    if not part.startswith("whsec_"):
        return "one of those given does not start with whsec_"
    rest = part.removeprefix("whsec_")
    if not _SECRET_CHARACTERS.fullmatch(rest):
        return "one of those given has a character after whsec_ that a signing secret does not (a stray quote?)"
    return f"one of those given has only {len(rest)} characters after whsec_"


async def webhook_secret(services: Services, tenant_id: str) -> str | None:
    """The tenant's own webhook secret(s), comma-separated; None when it has no endpoint of its own."""
    async with connection(services.pool) as conn:
        return await api_keys.webhook_secret(conn, tenant_id[:64])
