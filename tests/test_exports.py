"""Exports for finance: stable columns, integer minor units with their currency, UTC ISO 8601 times, period and
tenant filters, CSV and JSON lines, and a large export streamed in constant memory."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import call, paywarden_command, process_environment

TODAY = datetime.now(UTC).date().isoformat()
COLUMNS = {
    "payments": "payment_id,tenant_id,customer_id,product_id,status,amount_minor,currency,refunded_minor,provider,"
    "provider_payment_id,receipt_number,created_at,succeeded_at,updated_at",
    "refunds": "refund_id,tenant_id,payment_id,customer_id,status,amount_minor,currency,provider_refund_id,reason,"
    "created_at,updated_at",
    "credit-ledger": "entry_id,tenant_id,customer_id,feature,kind,granted_delta,used_delta,reserved_delta,"
    "granted_after,used_after,reserved_after,lot_id,reservation_id,payment_id,note,created_at",
    "audit": "audit_id,tenant_id,payment_id,actor,from_status,to_status,reason,api_key_id,created_at",
    "disputes": "dispute_id,tenant_id,payment_id,status,amount_minor,currency,reason,policy,evidence_due_by,"
    "funds_withdrawn_at,funds_reinstated_at,evidence_submitted_at,created_at,closed_at",
}


async def _export(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    target = tmp_path / "export.out"
    code, said = await paywarden_command(database_url, "export", *args, "-o", str(target))
    return code, target.read_text() if code == 0 else said


async def test_every_export_has_its_documented_columns_and_filters(mcp, app, db, database_url, tmp_path) -> None:
    async with mcp() as client:
        paid = await call(
            client, "create_charge", customer_id="cus_x", idempotency_key="x1", product_id="pro_monthly",
            payment_method="pm_card_visa",
        )  # fmt: skip
        await call(
            client, "refund_payment", payment_id=paid["payment_id"], idempotency_key="rx", amount_minor=700,
            reason="=HYPERLINK(1)",
        )  # fmt: skip
    await db.execute("INSERT INTO tenants (id, name) VALUES ('other', 'Other')")
    await db.execute(
        "INSERT INTO payments (id, tenant_id, customer_id, amount_minor, currency, provider)"
        " VALUES ('pay_other', 'other', 'cus_o', 99, 'JPY', 'sandbox')"
    )
    for kind, columns in COLUMNS.items():
        code, text = await _export(database_url, tmp_path, kind, "--from", TODAY, "--to", TODAY)
        assert code == 0, text
        assert text.splitlines()[0] == columns, kind
    code, text = await _export(database_url, tmp_path, "payments", "--from", TODAY, "--to", TODAY)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {row["payment_id"] for row in rows} == {paid["payment_id"], "pay_other"}
    mine = next(row for row in rows if row["payment_id"] == paid["payment_id"])
    assert (mine["amount_minor"], mine["currency"], mine["refunded_minor"]) == ("2000", "USD", "700")
    assert mine["created_at"].endswith("Z") and datetime.fromisoformat(mine["succeeded_at"]).tzinfo is not None
    code, text = await _export(database_url, tmp_path, "payments", "--from", TODAY, "--to", TODAY, "--tenant", "other")
    assert [row["payment_id"] for row in csv.DictReader(io.StringIO(text))] == ["pay_other"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    code, text = await _export(database_url, tmp_path, "payments", "--from", tomorrow, "--to", tomorrow)
    assert text.splitlines() == [COLUMNS["payments"]]
    code, text = await _export(database_url, tmp_path, "refunds", "--from", TODAY, "--to", TODAY, "--format", "jsonl")
    (refund,) = [json.loads(line) for line in text.splitlines()]
    assert refund["amount_minor"] == 700 and refund["currency"] == "USD" and refund["payment_id"] == paid["payment_id"]
    assert list(refund) == COLUMNS["refunds"].split(",") and refund["reason"] == "=HYPERLINK(1)"
    code, text = await _export(database_url, tmp_path, "refunds", "--from", TODAY, "--to", TODAY)
    (row,) = csv.DictReader(io.StringIO(text))
    assert row["reason"] == "'=HYPERLINK(1)"  # a spreadsheet shows it, never runs it
    code, said = await paywarden_command(database_url, "export", "payments", "--from", "yesterday", "--to", TODAY)
    assert code == 1 and "YYYY-MM-DD" in said


@pytest.mark.slow
async def test_a_large_export_streams_in_constant_memory(db, database_url, tmp_path) -> None:
    await db.execute(
        "INSERT INTO payments (id, tenant_id, customer_id, amount_minor, currency, provider)"
        " VALUES ('pay_big', 'default', 'cus_big', 100, 'USD', 'sandbox')"
    )
    await db.execute(
        """
        INSERT INTO payment_audit (tenant_id, payment_id, actor, from_status, to_status, reason)
        SELECT 'default', 'pay_big', 'webhook', 'created', 'succeeded', repeat('because ', 50) || n
          FROM generate_series(1, 100000) n
        """
    )
    small, large = await _peak_rss_exporting(database_url, tmp_path)
    written = (tmp_path / "large.csv").stat().st_size
    assert written > 40_000_000 and _lines(tmp_path / "large.csv") == 100_001
    assert large - small < 15_000_000, (small, large, written)  # 40+ MB written; memory stays where it was


async def _peak_rss_exporting(database_url: str, folder: Path) -> tuple[int, int]:
    """One process's peak resident size (bytes) after `paywarden export audit` of one day that holds nothing, then
    after the one that holds everything (one process, so both measure the same imports)."""
    runs = (
        "import resource, sys, cli\n"
        "def export(day, name):\n"
        "    assert cli.main(['export', 'audit', '--from', day, '--to', day, '-o', sys.argv[3] + name]) == 0\n"
        "    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(export(sys.argv[1], '/small.csv'), export(sys.argv[2], '/large.csv'), file=sys.stderr)\n"
    )
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", runs, yesterday, TODAY, str(folder),
        env=process_environment(database_url), stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    _, said = await process.communicate()
    assert process.returncode == 0, said.decode()
    small, large = said.decode().strip().splitlines()[-1].split()
    return int(small), int(large)


def _lines(path: Path) -> int:
    with path.open("rb") as file:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))
