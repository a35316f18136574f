"""The approval queue: payments held for an operator (`requires_approval`), oldest first, each with why it
was held, who may approve it, the earlier payment it repeats (if that is why) and when it expires. Deciding
goes through `charges.approve` and `charges.reject`, from the console and the CLI alike."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from db import reports
from db.pool import connection
from db.reports import HeldPayment
from server.payment_search import PaymentSummary
from server.services import Services

PAYMENT_ID = re.compile(r"\bpay_[0-9a-f]{24}\b")
OPERATOR_ONLY = re.compile(r"\(an operator must approve it: ([^;)]+)")
QUEUE_LIMIT = 500


@dataclass(frozen=True, kw_only=True)
class WaitingPayment:
    payment: PaymentSummary
    reasons: list[str]
    """Why it was held, one reason each (above a threshold, a repeat of an earlier payment, …)."""
    operator_only: str | None
    """Why only an operator may approve it (the agent's MCP client could not); None when the person could
    have approved it through the client but was not asked."""
    earlier_payment_ids: list[str]
    """The earlier payment(s) this one repeats, when that is a reason."""
    key_name: str | None
    """The name of the API key that asked for it (None for a local caller)."""
    expires_at: datetime
    """When the reconciler cancels it if nobody has decided (PAYWARDEN_APPROVAL_EXPIRY_HOURS after the hold)."""

    @property
    def waiting_since(self) -> datetime:
        return self.payment.created_at


def reasons_of(approval_reason: str | None) -> list[str]:
    """`needs approval: a; b` → `[a, b]`."""
    if not approval_reason:
        return []
    return [part.strip() for part in approval_reason.removeprefix("needs approval:").split(";") if part.strip()]


def _waiting(held: HeldPayment, expiry_hours: float) -> WaitingPayment:
    payment = held.payment
    only = OPERATOR_ONLY.search(held.hold_note or "")
    return WaitingPayment(
        payment=PaymentSummary.of_payment(payment),
        reasons=reasons_of(payment.approval_reason),
        operator_only=only.group(1).strip() if only else None,
        earlier_payment_ids=PAYMENT_ID.findall(payment.approval_reason or ""),
        key_name=held.key_name,
        expires_at=payment.updated_at + timedelta(hours=expiry_hours),
    )


async def queue(services: Services, tenant_id: str | None, limit: int = QUEUE_LIMIT) -> list[WaitingPayment]:
    """What waits for an operator, oldest first: one tenant's, or every tenant's (None)."""
    async with connection(services.pool) as conn:
        held = await reports.waiting_for_approval(conn, tenant_id, limit)
    return [_waiting(one, services.settings.approval_expiry_hours) for one in held]


async def waiting(services: Services, tenant_id: str | None) -> int:
    """How many payments wait for an operator: one tenant's, or every tenant's (None)."""
    async with connection(services.pool) as conn:
        count, _ = await reports.approvals_waiting(conn, tenant_id)
    return count
