"""The schema can be distributed by tenant_id (Citus) without changing a query: checked on the catalog.

Every table is one of three kinds (docs/scaling.md says why each is where it is):
- distributed by tenant: customer data. Its primary key starts with tenant_id, every unique constraint
  includes tenant_id, and every foreign key to another distributed table goes tenant first to that
  table's tenant-first key (so related rows of a tenant live on one node).
- reference: small platform-wide tables every node holds a copy of; anything may point at them.
- local: platform bookkeeping that stays on the coordinator; no distributed table points at it.
"""

from __future__ import annotations

import asyncpg

REFERENCE = frozenset({
    "tenants", "api_keys", "payment_status_moves", "dispute_status_moves", "subscription_status_moves", "operators",
    "server_secrets",
})  # fmt: skip
LOCAL = frozenset({
    "schema_migrations", "webhook_events", "provider_event_cursors", "reconciler_runs", "api_key_usage",
    "operator_sessions", "operator_signin_failures", "operator_audit",
})  # fmt: skip

_TABLES = """
SELECT c.relname AS table, c.oid
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind = 'r'
"""
_CONSTRAINTS = """
SELECT c.relname AS table, con.conname AS name, con.contype AS kind, r.relname AS refers_to,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k (num, ord)
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord) AS columns,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k (num, ord)
               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord) AS refers_columns
  FROM pg_constraint con
  JOIN pg_class c ON c.oid = con.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_class r ON r.oid = con.confrelid
 WHERE n.nspname = 'public' AND con.contype IN ('p', 'u', 'f')
"""


async def test_every_table_is_distributed_by_tenant_or_says_why_not(db: asyncpg.Connection) -> None:
    tables = {row["table"] for row in await db.fetch(_TABLES)}
    distributed = tables - REFERENCE - LOCAL
    assert (REFERENCE | LOCAL) <= tables, f"listed but gone: {sorted((REFERENCE | LOCAL) - tables)}"
    tenantless = [
        table
        for table in sorted(distributed)
        if not await db.fetchval(
            "SELECT attnotnull FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'tenant_id'", table
        )
    ]
    assert tenantless == [], "customer tables without a NOT NULL tenant_id"


async def test_distributed_tables_are_keyed_and_foreign_keyed_tenant_first(db: asyncpg.Connection) -> None:
    tables = {row["table"] for row in await db.fetch(_TABLES)}
    distributed = tables - REFERENCE - LOCAL
    problems = []
    for con in await db.fetch(_CONSTRAINTS):
        if con["table"] not in distributed:
            if con["kind"] == b"f" and con["refers_to"] in distributed:
                problems.append(f"{con['table']}.{con['name']}: a {_kind(con['table'])} table points at customer data")
            continue
        problems += _problems(con, distributed)
    assert problems == []


def _problems(con: asyncpg.Record, distributed: set[str]) -> list[str]:
    where = f"{con['table']}.{con['name']} {list(con['columns'])}"
    if con["kind"] == b"p" and con["columns"][0] != "tenant_id":
        return [f"{where}: the primary key must start with tenant_id"]
    if con["kind"] == b"u" and "tenant_id" not in con["columns"]:
        return [f"{where}: a unique key must include tenant_id"]
    if con["kind"] == b"f" and con["refers_to"] in LOCAL:
        return [f"{where}: points at a local table"]
    if con["kind"] == b"f" and con["refers_to"] in distributed:
        if con["columns"][0] != "tenant_id" or con["refers_columns"][0] != "tenant_id":
            return [f"{where} -> {con['refers_to']} {list(con['refers_columns'])}: must go tenant first"]
    return []


def _kind(table: str) -> str:
    return "reference" if table in REFERENCE else "local"
