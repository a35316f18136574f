"""Exports for finance: each table's rows in a period streamed straight out of PostgreSQL with COPY (the
client holds one chunk at a time, however many rows), in stable columns: money as integer minor units with
its ISO 4217 currency, times as UTC ISO 8601 text (`2026-01-31T12:00:00.000000Z`).

The columns of each export are COLUMNS below, in order; a column is only ever added at the end."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

TIME = "time"
AGENT_TEXT = "agent_text"
"""Text an agent (or a provider) chose: in CSV, a cell of it that a spreadsheet would run as a formula (it
starts with =, +, -, @, a tab or a carriage return) gets a leading apostrophe, as the console's export does;
JSON lines keep it as is."""

COLUMNS: dict[str, list[tuple[str, str]]] = {
    "payments": [
        ("payment_id", "id"), ("tenant_id", ""), ("customer_id", AGENT_TEXT), ("product_id", ""), ("status", ""),
        ("amount_minor", ""), ("currency", ""), ("refunded_minor", ""), ("provider", ""),
        ("provider_payment_id", ""), ("receipt_number", ""), ("created_at", TIME), ("succeeded_at", TIME),
        ("updated_at", TIME),
    ],
    "refunds": [
        ("refund_id", "id"), ("tenant_id", ""), ("payment_id", ""), ("customer_id", AGENT_TEXT), ("status", ""),
        ("amount_minor", ""), ("currency", ""), ("provider_refund_id", ""), ("reason", AGENT_TEXT),
        ("created_at", TIME), ("updated_at", TIME),
    ],
    "credit-ledger": [
        ("entry_id", "id"), ("tenant_id", ""), ("customer_id", AGENT_TEXT), ("feature", ""), ("kind", ""),
        ("granted_delta", ""), ("used_delta", ""), ("reserved_delta", ""), ("granted_after", ""),
        ("used_after", ""), ("reserved_after", ""), ("lot_id", ""), ("reservation_id", ""), ("payment_id", ""),
        ("note", AGENT_TEXT), ("created_at", TIME),
    ],
    "audit": [
        ("audit_id", "id"), ("tenant_id", ""), ("payment_id", ""), ("actor", ""), ("from_status", ""),
        ("to_status", ""), ("reason", AGENT_TEXT), ("api_key_id", ""), ("created_at", TIME),
    ],
    "disputes": [
        ("dispute_id", "id"), ("tenant_id", ""), ("payment_id", ""), ("status", ""), ("amount_minor", ""),
        ("currency", ""), ("reason", ""), ("policy", ""), ("evidence_due_by", TIME), ("funds_withdrawn_at", TIME),
        ("funds_reinstated_at", TIME), ("evidence_submitted_at", TIME), ("created_at", TIME), ("closed_at", TIME),
    ],
}  # fmt: skip
"""(column, how it is read): "id" is the table's id column; TIME as UTC text; AGENT_TEXT guarded in CSV."""
TABLES = {
    "payments": "payments",
    "refunds": "refunds",
    "credit-ledger": "credit_ledger",
    "audit": "payment_audit",
    "disputes": "disputes",
}

Sink = Callable[[bytes], Awaitable[None]]


def query(kind: str, *, for_spreadsheets: bool) -> str:
    """The export's query: the rows of [$1, $2) by created_at, of tenant $3 (null: every tenant)."""
    columns = ", ".join(_column(name, how, for_spreadsheets) for name, how in COLUMNS[kind])
    return f"""
        SELECT {columns} FROM {TABLES[kind]}
         WHERE created_at >= $1 AND created_at < $2 AND ($3::text IS NULL OR tenant_id = $3)
         ORDER BY created_at, id"""


def _column(name: str, how: str, for_spreadsheets: bool) -> str:
    if how == "id":
        return f"id AS {name}"
    if how == TIME:
        return f"""to_char({name} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS {name}"""
    if how == AGENT_TEXT and for_spreadsheets:
        return f"CASE WHEN {name} ~ '^[-=+@\\t\\r]' THEN '''' || {name} ELSE {name} END AS {name}"
    return name


async def copy_csv(connection: asyncpg.Connection, kind: str, args: tuple, sink: Sink) -> None:
    """CSV with a header row (RFC 4180 quoting; an empty field is NULL)."""
    await connection.copy_from_query(query(kind, for_spreadsheets=True), *args, output=sink, format="csv", header=True)


async def copy_jsonl(connection: asyncpg.Connection, kind: str, args: tuple, sink: Sink) -> None:
    """One JSON object per line. CSV framing with a quote and delimiter that JSON text never holds unescaped
    (control characters), so each line is the JSON exactly as PostgreSQL wrote it."""
    rows = f"SELECT row_to_json(r)::text FROM ({query(kind, for_spreadsheets=False)}) r"
    await connection.copy_from_query(rows, *args, output=sink, format="csv", quote="\x01", delimiter="\x02")
