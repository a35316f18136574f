"""Who is calling: the tenant whose customers a call may touch, the API key it used, what it may do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from server.errors import MissingScope

DEFAULT_TENANT = "default"
Scope = Literal["read", "charge", "refund", "webhooks"]
SCOPES: tuple[Scope, ...] = ("read", "charge", "refund", "webhooks")
"""read: look up; charge: create charges and use credits; refund: refund; webhooks: manage the tenant's
webhook endpoints (where its events are sent)."""
Approver = Literal["client", "operator"]
"""Who may approve a caller's charges that need approval: the person through the MCP client, or only an operator."""
APPROVERS: tuple[Approver, ...] = ("client", "operator")


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    key_id: str | None
    """The API key that authenticated the call; None for the trusted local caller (stdio, in-process)."""
    scopes: frozenset[str]
    budget_minor: int | None = None
    """The most this key may charge in any rolling 24 hours; None for no key budget."""
    budget_currency: str | None = None
    """The budget's currency: a key with a budget charges only in it."""
    approval: Approver = "client"
    """Who may approve this caller's charges that need approval (the local caller is trusted: client)."""
    operator: str | None = None
    """The operator (signed in to the console) acting, by name; None when an agent's key or the local caller acts."""

    @property
    def actor(self) -> str:
        """Who the audit trail names: `operator` when a person at the console acts, else `agent`."""
        return "operator" if self.operator else "agent"

    def require(self, scope: Scope) -> None:
        if scope not in self.scopes:
            raise MissingScope(scope)


def operator_caller(tenant_id: str, operator: str, scopes: frozenset[str]) -> Caller:
    """An operator acting on a tenant's payments from the console: no API key, the operator's name in the audit."""
    return Caller(tenant_id=tenant_id, key_id=None, scopes=scopes, operator=operator)


def local_caller(tenant_id: str) -> Caller:
    """stdio and in-process clients: trusted, with every scope, acting as one configured tenant."""
    return Caller(tenant_id=tenant_id, key_id=None, scopes=frozenset(SCOPES))
