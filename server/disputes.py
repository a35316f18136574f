"""Disputes as callers see them, and the evidence paywarden assembles for one from its own ledger.

The state machine (and what a dispute does to what its payment granted) is server/ledger/dispute_machine.py;
the inbox applies the provider's dispute events through it. Here: the views get_payment and get_customer
show, the evidence (`paywarden disputes evidence`), staged automatically when PAYWARDEN_DISPUTE_AUTO_EVIDENCE
is on, and submitted to the provider only by an operator.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel, Field

from db import audit, disputes, entitlements, payments, refunds, reports
from db.disputes import Dispute
from db.payments import Payment
from db.pool import connection, transaction
from server.errors import NotAllowedNow, NotFound
from server.money import format_amount
from server.services import Services

CHARGED_BACK = frozenset({"needs_response", "under_review", "lost"})
"""A chargeback the card's bank has opened (or decided against the merchant): the money is withdrawn, so a
refund would return it a second time. Refunds are refused then, as Stripe refuses them (charge_disputed);
an inquiry (warning_*) moves no money and a refund may still settle it."""

EVIDENCE_TEXT_LIMIT = 20_000
"""Stripe's limit for each free-text evidence field."""


class DisputeView(BaseModel):
    dispute_id: str = Field(description="The provider's dispute id (du_… in the sandbox, du_ or dp_ at Stripe).")
    payment_id: str
    status: str = Field(
        description="needs_response, under_review, won, lost (a chargeback); warning_needs_response, "
        "warning_under_review, warning_closed (an inquiry); prevented."
    )
    amount_minor: int
    currency: str
    amount_display: str
    reason: str = Field(description="The card network's reason, as the provider names it (e.g. fraudulent).")
    evidence_due_by: datetime | None
    funds_withdrawn: bool = Field(description="The provider has taken the disputed amount from the balance.")
    funds_reinstated: bool
    access_suspended: bool = Field(
        description="What the payment granted is paused while the dispute is open (PAYWARDEN_DISPUTE_POLICY=suspend)."
    )
    evidence_submitted_at: datetime | None
    opened_at: datetime
    closed_at: datetime | None

    @classmethod
    def of(cls, dispute: Dispute) -> DisputeView:
        return cls(
            dispute_id=dispute.id,
            payment_id=dispute.payment_id,
            status=dispute.status,
            amount_minor=dispute.amount_minor,
            currency=dispute.currency,
            amount_display=format_amount(dispute.amount_minor, dispute.currency),
            reason=dispute.reason,
            evidence_due_by=dispute.evidence_due_by,
            funds_withdrawn=dispute.funds_withdrawn_at is not None,
            funds_reinstated=dispute.funds_reinstated_at is not None,
            access_suspended=dispute.policy == "suspend" and dispute.closed_at is None,
            evidence_submitted_at=dispute.evidence_submitted_at,
            opened_at=dispute.created_at,
            closed_at=dispute.closed_at,
        )


async def of_payment(conn: asyncpg.Connection, tenant_id: str, payment_id: str) -> list[DisputeView]:
    return [DisputeView.of(dispute) for dispute in await disputes.of_payment(conn, tenant_id, payment_id)]


async def of_customer(conn: asyncpg.Connection, tenant_id: str, customer_id: str) -> list[DisputeView]:
    return [DisputeView.of(d) for d in await disputes.of_customer(conn, tenant_id, customer_id, limit=20)]


class Evidence(BaseModel):
    """What the provider's evidence form asks for, from what paywarden knows, and the facts behind it."""

    dispute: DisputeView
    fields: dict[str, str] = Field(description="Stripe's evidence fields, as they would be submitted.")
    facts: dict[str, Any] = Field(description="The ledger's records each field was written from.")
    staged_at: datetime | None = None
    submitted_at: datetime | None = None


async def evidence(services: Services, dispute_id: str, tenant_id: str | None = None) -> Evidence:
    """Assemble the evidence for a dispute from the ledger (nothing is stored or sent)."""
    async with connection(services.pool) as conn:
        dispute, payment = await _dispute_and_payment(conn, dispute_id, tenant_id)
        return await assemble(conn, dispute, payment)


async def stage_evidence(conn: asyncpg.Connection, dispute: Dispute, payment: Payment, *, actor: str) -> Evidence:
    """Keep the assembled evidence with the dispute, for an operator to review and submit."""
    assembled = await assemble(conn, dispute, payment)
    await disputes.save_evidence(conn, dispute, assembled.model_dump(mode="json"), submitted=False)
    await disputes.append_audit(
        conn, dispute, actor=actor, action="evidence_staged", reason="assembled from the ledger"
    )
    return assembled


async def submit_evidence(services: Services, dispute_id: str, operator: str, tenant_id: str | None = None) -> Evidence:
    """Send the evidence to the provider (Stripe's dispute update, `evidence` fields), then record it and audit it
    as the operator's act. The provider call is idempotent per dispute and content."""
    assembled = await evidence(services, dispute_id, tenant_id)
    if assembled.dispute.closed_at is not None:
        raise NotAllowedNow(
            f"Dispute {dispute_id} is closed ({assembled.dispute.status}); evidence can no longer be sent."
        )
    submitted = assembled.dispute.evidence_submitted_at
    if submitted is not None:
        raise NotAllowedNow(
            f"Evidence for dispute {dispute_id} was submitted at {submitted:%Y-%m-%d %H:%M} UTC; the provider "
            "takes it once. The card network decides now; nothing more can be sent."
        )
    await services.provider.submit_dispute_evidence(dispute_id, assembled.fields)
    async with transaction(services.pool) as conn:
        dispute, _ = await _dispute_and_payment(conn, dispute_id, tenant_id, lock=True)
        await disputes.save_evidence(conn, dispute, assembled.model_dump(mode="json"), submitted=True)
        why = f"submitted to the provider by operator {operator}: " + ", ".join(sorted(assembled.fields))
        await disputes.append_audit(conn, dispute, actor="operator", action="evidence_submitted", reason=why)
        stored = await disputes.get(conn, dispute_id, tenant_id=dispute.tenant_id)
    assert stored is not None
    return assembled.model_copy(update={"submitted_at": stored.evidence_submitted_at})


async def _dispute_and_payment(
    conn: asyncpg.Connection, dispute_id: str, tenant_id: str | None, *, lock: bool = False
) -> tuple[Dispute, Payment]:
    dispute = await disputes.get(conn, dispute_id[:255], tenant_id=tenant_id)
    if dispute is None:
        raise NotFound(f"No dispute {dispute_id!r}. Dispute ids are the provider's (du_…); see get_payment.")
    if lock:
        dispute = await disputes.lock(conn, dispute.tenant_id, dispute.id)
        assert dispute is not None
    payment = await payments.get(conn, dispute.payment_id, tenant_id=dispute.tenant_id)
    assert payment is not None
    return dispute, payment


async def assemble(conn: asyncpg.Connection, dispute: Dispute, payment: Payment) -> Evidence:
    timeline = [_entry(entry) for entry in await audit.timeline(conn, payment.id)]
    periods = await entitlements.of_payment(conn, payment.id)
    bought = sorted({grant["feature"] for grant in payment.grants if grant.get("credits")})
    credit_use = await reports.credit_use_since(conn, payment.tenant_id, payment.customer_id, bought, _paid_at(payment))
    offered = await refunds.for_payment(conn, payment.id)
    facts = {
        "payment_id": payment.id,
        "customer_id": payment.customer_id,
        "product_id": payment.product_id,
        "amount": format_amount(payment.amount_minor, payment.currency),
        "paid_at": _paid_at(payment).isoformat(),
        "receipt_number": payment.receipt_number,
        "how_paid": _how_paid(payment),
        "timeline": timeline,
        "approval": [entry for entry in timeline if _is_approval(entry)],
        "entitlement_periods": [
            {
                "feature": period.feature,
                "starts_at": period.starts_at.isoformat(),
                "expires_at": period.expires_at.isoformat(),
                "revoked_at": period.revoked_at.isoformat() if period.revoked_at else None,
            }
            for period in periods
        ],
        "credit_use_after_payment": credit_use,
        "refunds": [
            {
                "refund_id": refund.id,
                "amount": format_amount(refund.amount_minor, refund.currency),
                "status": str(refund.status),
                "at": refund.created_at.isoformat(),
                "reason": refund.reason,
            }
            for refund in offered
        ],
    }
    return Evidence(
        dispute=DisputeView.of(dispute),
        fields=_stripe_fields(payment, facts),
        facts=facts,
        staged_at=dispute.evidence_staged_at,
        submitted_at=dispute.evidence_submitted_at,
    )


def _paid_at(payment: Payment) -> datetime:
    return payment.succeeded_at or payment.charged_at


def _entry(entry: audit.AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "from": entry.from_status,
        "to": entry.to_status,
        "reason": entry.reason,
        "api_key_id": entry.api_key_id,
    }


def _is_approval(entry: dict[str, Any]) -> bool:
    return (
        entry["to"] == "requires_approval"
        or entry["from"] == "requires_approval"
        or "approv" in (entry["reason"] or "")
    )


def _how_paid(payment: Payment) -> str:
    if payment.off_session:
        return f"saved card {payment.payment_method} charged off-session (the customer saved it earlier)"
    if payment.provider_checkout_id:
        return f"paid by the customer on the provider's hosted payment page (Checkout {payment.provider_checkout_id})"
    if payment.next_action_url:
        return "card authenticated by the customer on the provider's hosted page (3-D Secure)"
    return f"card {payment.payment_method} charged with the customer's consent"


def _stripe_fields(payment: Payment, facts: dict[str, Any]) -> dict[str, str]:
    product = payment.description or payment.product_id or "payment"
    lines = {
        "product_description": f"{product} ({facts['amount']}), product {payment.product_id or 'n/a'}, "
        f"bought by customer {payment.customer_id}; {facts['how_paid']}.",
        "service_date": _paid_at(payment).date().isoformat(),
        "access_activity_log": _activity_log(facts),
        "refund_refusal_explanation": _refunds_text(facts),
        "uncategorized_text": "Payment timeline (paywarden audit trail):\n"
        + "\n".join(
            f"{e['at']} {e['actor']}{' (key ' + e['api_key_id'] + ')' if e['api_key_id'] else ''}: "
            f"{e['from'] or 'new'} -> {e['to']}{' — ' + e['reason'] if e['reason'] else ''}"
            for e in facts["timeline"]
        ),
    }
    return {name: text[:EVIDENCE_TEXT_LIMIT] for name, text in lines.items() if text}


def _activity_log(facts: dict[str, Any]) -> str:
    periods = [
        f"access to {p['feature']} from {p['starts_at']} to {p['expires_at']}"
        + (f" (revoked {p['revoked_at']})" if p["revoked_at"] else "")
        for p in facts["entitlement_periods"]
    ]
    used = [
        f"{use['feature']}: {use['used']} credits used in {use['entries']} uses between {use['first_at']} and "
        f"{use['last_at']}"
        for use in facts["credit_use_after_payment"]
    ]
    return "\n".join(["Service delivered after the payment:", *periods, *used]) if periods or used else ""


def _refunds_text(facts: dict[str, Any]) -> str:
    if not facts["refunds"]:
        return "No refund was requested for this payment."
    return "Refunds given for this payment: " + "; ".join(
        f"{r['amount']} ({r['status']}, {r['at']})" for r in facts["refunds"]
    )
