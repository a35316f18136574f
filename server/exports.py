"""`paywarden export payments|refunds|credit-ledger|audit|disputes`: a period of one table for finance,
streamed (db/exports.py holds the columns) in a read-only transaction, so a long export sees one snapshot."""

from __future__ import annotations

from datetime import datetime

from db import exports
from db.exports import Sink
from db.pool import connection
from server import tenants
from server.errors import InvalidRequest
from server.services import Services

KINDS = tuple(exports.COLUMNS)
FORMATS = ("csv", "jsonl")


async def export(
    services: Services, kind: str, since: datetime, until: datetime, tenant_id: str | None, fmt: str, sink: Sink
) -> None:
    if kind not in exports.COLUMNS:
        raise InvalidRequest(f"Unknown export {kind!r}; one of {', '.join(KINDS)}.")
    if fmt not in FORMATS:
        raise InvalidRequest(f"Unknown format {fmt!r}; one of {', '.join(FORMATS)}.")
    if until <= since:
        raise InvalidRequest("--to must be after --from.")
    await tenants.require_exists(services, tenant_id)
    copy = exports.copy_csv if fmt == "csv" else exports.copy_jsonl
    async with connection(services.pool) as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
        await copy(conn, kind, (since, until, tenant_id), sink)
