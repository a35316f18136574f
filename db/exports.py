"""Exports for finance: each table's rows in a period streamed straight out of PostgreSQL with COPY (the
client holds one chunk at a time, however many rows), in stable columns: money as integer minor units with
its ISO 4217 currency, times as UTC ISO 8601 text (`2026-01-31T12:00:00.000000Z`).

The columns of each export are the SELECT lists below, in order; a column is only ever added at the end."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

UTC_TEXT = """to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def _utc(column: str) -> str:
    return UTC_TEXT.format(column=column) + " AS " + column.rsplit(".", 1)[-1]


QUERIES: dict[str, str] = {
    "payments": f"""
        SELECT id AS payment_id, tenant_id, customer_id, product_id, status, amount_minor, currency, refunded_minor,
               provider, provider_payment_id, receipt_number, {_utc("created_at")}, {_utc("succeeded_at")},
               {_utc("updated_at")}
          FROM payments
         WHERE created_at >= $1 AND created_at < $2 AND ($3::text IS NULL OR tenant_id = $3)
         ORDER BY created_at, id""",
    "refunds": f"""
        SELECT id AS refund_id, tenant_id, payment_id, customer_id, status, amount_minor, currency,
               provider_refund_id, reason, {_utc("created_at")}, {_utc("updated_at")}
          FROM refunds
         WHERE created_at >= $1 AND created_at < $2 AND ($3::text IS NULL OR tenant_id = $3)
         ORDER BY created_at, id""",
    "credit-ledger": f"""
        SELECT id AS entry_id, tenant_id, customer_id, feature, kind, granted_delta, used_delta, reserved_delta,
               granted_after, used_after, reserved_after, lot_id, reservation_id, payment_id, note,
               {_utc("created_at")}
          FROM credit_ledger
         WHERE created_at >= $1 AND created_at < $2 AND ($3::text IS NULL OR tenant_id = $3)
         ORDER BY created_at, id""",
    "audit": f"""
        SELECT id AS audit_id, tenant_id, payment_id, actor, from_status, to_status, reason, api_key_id,
               {_utc("created_at")}
          FROM payment_audit
         WHERE created_at >= $1 AND created_at < $2 AND ($3::text IS NULL OR tenant_id = $3)
         ORDER BY created_at, id""",
    "disputes": f"""
        SELECT id AS dispute_id, tenant_id, payment_id, status, amount_minor, currency, reason, policy,
               {_utc("evidence_due_by")}, {_utc("funds_withdrawn_at")}, {_utc("funds_reinstated_at")},
               {_utc("evidence_submitted_at")}, {_utc("created_at")}, {_utc("closed_at")}
          FROM disputes
         WHERE created_at >= $1 AND created_at < $2 AND ($3::text IS NULL OR tenant_id = $3)
         ORDER BY created_at, id""",
}
"""One query per export; its select list is the export's documented columns."""

Sink = Callable[[bytes], Awaitable[None]]


async def copy_csv(connection: asyncpg.Connection, kind: str, args: tuple, sink: Sink) -> None:
    """CSV with a header row (RFC 4180 quoting; an empty field is NULL)."""
    await connection.copy_from_query(QUERIES[kind], *args, output=sink, format="csv", header=True)


async def copy_jsonl(connection: asyncpg.Connection, kind: str, args: tuple, sink: Sink) -> None:
    """One JSON object per line. CSV framing with a quote and delimiter that JSON text never holds unescaped
    (control characters), so each line is the JSON exactly as PostgreSQL wrote it."""
    query = f"SELECT row_to_json(r)::text FROM ({QUERIES[kind]}) r"
    await connection.copy_from_query(query, *args, output=sink, format="csv", quote="\x01", delimiter="\x02")
