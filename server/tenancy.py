"""Who is calling: the tenant whose customers a call may touch, the API key it used, what it may do."""

from __future__ import annotations

from dataclasses import dataclass

from server.errors import MissingScope

DEFAULT_TENANT = "default"
SCOPES = ("read", "charge", "refund")
"""`read`: check_entitlement, get_payment, list_payments. `charge`: create_charge and the credit
tools that spend (reserve, settle, release, consume). `refund`: refund_payment."""


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    key_id: str | None
    """The API key that authenticated the call; None for the trusted local caller (stdio, in-process)."""
    scopes: frozenset[str]
    budget_minor: int | None = None
    """The most this key may charge in any rolling 24 hours, per currency; None for no key budget."""
    rate_per_minute: int | None = None

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise MissingScope(scope)


def local_caller(tenant_id: str) -> Caller:
    """stdio and in-process clients: trusted, with every scope, acting as one configured tenant."""
    return Caller(tenant_id=tenant_id, key_id=None, scopes=frozenset(SCOPES))
