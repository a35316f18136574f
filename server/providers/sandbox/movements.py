"""Money moving at the sandbox, as Stripe's balance shows it: a balance transaction for every charge,
refund and dispute (with a fee model like Stripe's: 2.9% + 0.30 of the currency on a charge, 15.00 on a
dispute), and disputes — opened by the `pm_card_createDispute` test card right after its charge succeeds,
closed won or lost by `paywarden sandbox dispute close`.

`follow` is called for every event the sandbox emits; the events it returns are emitted after it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from server.money import EXPONENTS
from server.providers.sandbox import store
from server.providers.sandbox.objects import balance_transaction_template, charge_template, dispute_template, fill

DISPUTING_CARD = "pm_card_createDispute"
EVIDENCE_DAYS = 7
Followers = list[tuple[str, dict[str, Any]]]


def charge_fee(amount: int, currency: str) -> int:
    """2.9% (rounded half up) plus 0.30 of the currency (nothing fixed for a currency without cents)."""
    exponent = EXPONENTS[currency.upper()]
    return (amount * 29 + 500) // 1000 + (30 * 10**exponent // 100 if exponent else 0)


def dispute_fee(currency: str) -> int:
    return 15 * 10 ** EXPONENTS[currency.upper()]


async def follow(conn: asyncpg.Connection, event_type: str, obj: dict[str, Any]) -> Followers:
    """What an event sets in motion: balance transactions, and the dispute a disputing card opens."""
    if event_type == "payment_intent.succeeded":
        await _record(conn, obj["latest_charge"] or "ch_" + obj["id"][3:], "charge", obj, payment_intent=obj["id"])
        if await _test_card(conn, obj.get("payment_method")) == DISPUTING_CARD:
            return await open_dispute(conn, obj)
    elif event_type == "refund.created" and obj.get("status") == "succeeded":
        await _record(conn, obj["id"], "refund", obj, payment_intent=obj.get("payment_intent"), refund=obj["id"])
    elif event_type in ("charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated"):
        kind = "adjustment" if event_type.endswith("withdrawn") else "dispute_reinstatement"
        await _record(conn, obj["id"], kind, obj, payment_intent=obj.get("payment_intent"), dispute=obj["id"])
    return []


async def _test_card(conn: asyncpg.Connection, payment_method: Any) -> str | None:
    if not isinstance(payment_method, str) or not payment_method.startswith("pm_"):
        return None
    if payment_method.startswith("pm_card_"):
        return payment_method
    private = await store.get_private(conn, "payment_method", payment_method) or {}
    return private.get("test_card")


async def open_dispute(conn: asyncpg.Connection, intent: dict[str, Any]) -> Followers:
    """A dispute of the whole charge as fraudulent, as Stripe's test card opens one; its funds withdrawn."""
    now = int(time.time())
    dispute = fill(
        dispute_template("du_" + secrets.token_hex(12)),
        amount=intent["amount_received"] or intent["amount"],
        charge=intent["latest_charge"] or "ch_" + intent["id"][3:],
        payment_intent=intent["id"],
        currency=intent["currency"],
        created=now,
        reason="fraudulent",
        status="needs_response",
        is_charge_refundable=False,
    )
    dispute["evidence_details"] = {**dispute["evidence_details"], "due_by": now + EVIDENCE_DAYS * 86_400}
    await put_dispute(conn, dispute)
    return [("charge.dispute.created", dispute), ("charge.dispute.funds_withdrawn", dispute)]


async def close_dispute(conn: asyncpg.Connection, dispute_id: str, *, won: bool) -> Followers:
    """Close an open dispute (what the card network decides); a won one gives the money back."""
    dispute = await lock_dispute(conn, dispute_id)
    if dispute is None:
        raise LookupError(f"The sandbox has no dispute {dispute_id!r}.")
    if dispute["status"] in ("won", "lost", "warning_closed", "prevented"):
        raise ValueError(f"Dispute {dispute_id} is already closed ({dispute['status']}).")
    closed = {**dispute, "status": "won" if won else "lost"}
    await put_dispute(conn, closed)
    events = [("charge.dispute.closed", closed)]
    if won:
        events.append(("charge.dispute.funds_reinstated", closed))
    return events


async def submit_evidence(conn: asyncpg.Connection, dispute_id: str, evidence: dict[str, Any], submit: bool) -> dict:
    dispute = await lock_dispute(conn, dispute_id)
    if dispute is None:
        raise LookupError(dispute_id)
    details = dict(dispute["evidence_details"])
    details["has_evidence"] = True
    if submit:
        details.update(submission_count=details.get("submission_count", 0) + 1, submission_method="manual")
    updated = {
        **dispute,
        "evidence": {**dispute["evidence"], **evidence},
        "evidence_details": details,
        "status": "under_review" if submit and dispute["status"] == "needs_response" else dispute["status"],
    }
    await put_dispute(conn, updated)
    return updated


async def _record(conn: asyncpg.Connection, source: str, kind: str, obj: dict[str, Any], **links: Any) -> None:
    amount, currency = int(obj["amount"]), str(obj["currency"])
    signed, fee = {
        "charge": (amount, charge_fee(amount, currency)),
        "refund": (-amount, 0),
        "adjustment": (-amount, dispute_fee(currency)),
        "dispute_reinstatement": (amount, 0),
    }[kind]
    now = int(time.time())
    category = {"adjustment": "dispute", "dispute_reinstatement": "dispute_reversal"}.get(kind, kind)
    txn = fill(
        balance_transaction_template("txn_" + secrets.token_hex(12)),
        amount=signed,
        available_on=now + 2 * 86_400,
        created=now,
        currency=currency,
        fee=fee,
        fee_details=[_fee_detail(fee, currency, kind)] if fee else [],
        net=signed - fee,
        reporting_category=category,
        source=source,
        status="pending",
        type=kind,
    )
    await insert_balance_transaction(conn, txn, {key: value for key, value in links.items() if value})


def _fee_detail(fee: int, currency: str, kind: str) -> dict[str, Any]:
    what = "Dispute fee" if kind == "adjustment" else "Stripe processing fees"
    return {"amount": fee, "application": None, "currency": currency, "description": what, "type": "stripe_fee"}


async def put_dispute(conn: asyncpg.Connection, dispute: dict[str, Any]) -> None:
    await conn.execute(
        """
        INSERT INTO sandbox.disputes (id, payment_intent, object) VALUES ($1, $2, $3)
        ON CONFLICT (id) DO UPDATE SET object = EXCLUDED.object, updated_at = now()
        """,
        dispute["id"],
        dispute["payment_intent"],
        dispute,
    )


async def charged_back(conn: asyncpg.Connection, payment_intent: str) -> bool:
    """A dispute of this payment has taken its money (open or lost): Stripe refuses a refund then."""
    return await conn.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM sandbox.disputes
                        WHERE payment_intent = $1 AND object ->> 'status' IN ('needs_response', 'under_review', 'lost'))
        """,
        payment_intent,
    )


async def get_dispute(conn: asyncpg.Connection, dispute_id: str) -> dict[str, Any] | None:
    return await conn.fetchval("SELECT object FROM sandbox.disputes WHERE id = $1", dispute_id)


async def lock_dispute(conn: asyncpg.Connection, dispute_id: str) -> dict[str, Any] | None:
    return await conn.fetchval("SELECT object FROM sandbox.disputes WHERE id = $1 FOR UPDATE", dispute_id)


async def insert_balance_transaction(conn: asyncpg.Connection, txn: dict[str, Any], links: dict[str, str]) -> None:
    """Once per source and type: a redelivered event never moves money twice."""
    await conn.execute(
        """
        INSERT INTO sandbox.balance_transactions (id, source, created, object, private) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT DO NOTHING
        """,
        txn["id"],
        txn["source"],
        txn["created"],
        txn,
        links,
    )


@dataclass(frozen=True)
class BalanceQuery:
    limit: int
    created_gte: int | None = None
    created_lt: int | None = None
    starting_after: str | None = None


async def list_balance_transactions(
    conn: asyncpg.Connection, query: BalanceQuery, *, expand_source: bool
) -> tuple[list[dict[str, Any]], bool] | None:
    """Newest first, paged by `starting_after` (older) as Stripe's list is; None for an unknown cursor."""
    cursor = None
    if query.starting_after is not None:
        cursor = await conn.fetchval("SELECT seq FROM sandbox.balance_transactions WHERE id = $1", query.starting_after)
        if cursor is None:
            return None
    rows = await conn.fetch(
        """
        SELECT object, private FROM sandbox.balance_transactions
         WHERE ($1::bigint IS NULL OR created >= $1) AND ($2::bigint IS NULL OR created < $2)
           AND ($3::bigint IS NULL OR seq < $3)
         ORDER BY seq DESC LIMIT $4
        """,
        query.created_gte,
        query.created_lt,
        cursor,
        query.limit + 1,
    )
    page = []
    for row in rows[: query.limit]:
        txn = dict(row["object"])
        if expand_source:
            txn["source"] = await _source(conn, txn, row["private"])
        page.append(txn)
    return page, len(rows) > query.limit


async def _source(conn: asyncpg.Connection, txn: dict[str, Any], links: dict[str, Any]) -> dict[str, Any]:
    """The object that moved the money, as `expand[]=data.source` gives it."""
    if "dispute" in links:
        return await get_dispute(conn, links["dispute"]) or {"id": txn["source"], "object": "dispute"}
    if "refund" in links:
        return await store.get_refund(conn, links["refund"]) or {"id": txn["source"], "object": "refund"}
    intent = await store.get_intent(conn, links.get("payment_intent", "")) or {}
    return fill(
        charge_template(txn["source"]),
        amount=intent.get("amount", 0),
        amount_captured=intent.get("amount_received", 0),
        currency=intent.get("currency", txn["currency"]),
        payment_intent=links.get("payment_intent"),
        metadata=intent.get("metadata") or {},
        paid=True,
        captured=True,
        status="succeeded",
        created=txn["created"],
    )
