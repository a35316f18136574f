"""`paywarden report reconcile` (the provider's money against the ledger, for finance), `paywarden export …`
(a period of one table, streamed) and `paywarden disputes evidence` (a dispute's evidence from the ledger;
--submit sends it)."""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import sys
from collections.abc import Callable, Iterator

from cli.common import with_services
from server import disputes, exports, finance
from server.config import Settings
from server.finance import SECTIONS, ReconcileLine, ReconcileReport
from server.money import format_amount

LINE_COLUMNS = ["section", *ReconcileLine.model_fields]
TITLES = {
    "matched": "Matched",
    "provider_only": "At the provider, not in the ledger",
    "ledger_only": "In the ledger, not at the provider",
    "mismatches": "Amount, currency or status mismatches",
}


def register(commands: argparse._SubParsersAction) -> None:
    register_export(commands)
    report = commands.add_parser("report", help="reports for finance").add_subparsers(required=True, metavar="REPORT")
    reconcile = report.add_parser("reconcile", help="the provider's money movements matched against the ledger")
    reconcile.add_argument("--from", dest="day_from", required=True, help="first day, YYYY-MM-DD (UTC)")
    reconcile.add_argument("--to", dest="day_to", required=True, help="last day, YYYY-MM-DD (UTC), included")
    reconcile.add_argument("--tenant", help="only this tenant's ledger")
    reconcile.add_argument("--format", choices=("table", "csv", "json"), default="table")
    reconcile.set_defaults(command=run_reconcile)
    group = commands.add_parser("disputes", help="disputes (chargebacks)").add_subparsers(
        required=True, metavar="ACTION"
    )
    evidence = group.add_parser("evidence", help="a dispute's evidence, assembled from the ledger")
    evidence.add_argument("dispute_id", metavar="DISPUTE_ID")
    evidence.add_argument("--json", action="store_true", help="print it as JSON")
    evidence.add_argument("--submit", action="store_true", help="send it to the provider (audited as the operator)")
    evidence.add_argument("--by", default=os.environ.get("USER") or "operator", help="who submits (audited)")
    evidence.set_defaults(command=run_evidence)


def run_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    since, until = finance.period(args.day_from, args.day_to)
    report = with_services(settings, lambda services: finance.reconcile(services, since, until, args.tenant))
    {"json": _print_json, "csv": _print_csv, "table": _print_table}[args.format](report)
    if report.unmatched:
        print(f"paywarden: {report.unmatched} movement(s) do not reconcile", file=sys.stderr)
        return 1
    return 0


def _print_json(report: ReconcileReport) -> None:
    print(report.model_dump_json(indent=2))


def _print_csv(report: ReconcileReport) -> None:
    out = csv.DictWriter(sys.stdout, fieldnames=LINE_COLUMNS, lineterminator="\n")
    out.writeheader()
    for section in SECTIONS:
        for line in getattr(report, section):
            out.writerow({"section": section, **line.model_dump()})
    for total in report.totals:
        for name in ("gross", "refunds", "disputes", "fees", "net"):
            amount = getattr(total, f"{name}_minor")
            out.writerow(
                {"section": "totals", "kind": name, "currency": total.currency, "provider_amount_minor": amount}
            )


def _print_table(report: ReconcileReport) -> None:
    print(f"Reconciliation {report.period_from:%Y-%m-%d %H:%M} – {report.period_to:%Y-%m-%d %H:%M} UTC"
          f"{' tenant ' + report.tenant_id if report.tenant_id else ''}")  # fmt: skip
    for section in SECTIONS:
        lines = getattr(report, section)
        print(f"\n{TITLES[section]}: {len(lines)}")
        for line in lines:
            provider = _amount(line.provider_amount_minor, line.currency)
            ledger = _amount(line.ledger_amount_minor, line.currency)
            print(
                f"  {line.kind:<16} provider {line.provider_txn_id or '—'} {line.provider_id or '—'} {provider}"
                f" (fee {_amount(line.fee_minor, line.currency)}) | ledger {line.ledger_id or '—'} {ledger}"
                f" {line.ledger_status or ''}{'  ← ' + line.problem if line.problem else ''}"
            )
    print("\nTotals (the provider's balance)")
    for total in report.totals:
        parts = [
            f"{name} {format_amount(getattr(total, name + '_minor'), total.currency)}"
            for name in ("gross", "refunds", "disputes", "fees", "net")
        ]
        print(f"  {total.currency}: " + ", ".join(parts))


def _amount(amount_minor: int | None, currency: str) -> str:
    return "—" if amount_minor is None else format_amount(amount_minor, currency)


def run_evidence(settings: Settings, args: argparse.Namespace) -> int:
    if args.submit:
        found = with_services(settings, lambda services: disputes.submit_evidence(services, args.dispute_id, args.by))
    else:
        found = with_services(settings, lambda services: disputes.evidence(services, args.dispute_id))
    if args.json:
        print(found.model_dump_json(indent=2))
    else:
        shown = found.dispute
        print(
            f"Dispute {shown.dispute_id} on {shown.payment_id}: {shown.status}, {shown.amount_display}, {shown.reason}"
        )
        if shown.evidence_due_by:
            print(f"Evidence due by {shown.evidence_due_by:%Y-%m-%d %H:%M} UTC")
        for name, text in found.fields.items():
            print(f"\n[{name}]\n{text}")
    if args.submit:
        print(f"\nSubmitted to the provider by {args.by}.", file=sys.stderr)
    return 0


def register_export(commands: argparse._SubParsersAction) -> None:
    out = commands.add_parser("export", help="a period of payments, refunds, the credit ledger, audit or disputes")
    out.add_argument("kind", choices=exports.KINDS)
    out.add_argument("--from", dest="day_from", required=True, help="first day, YYYY-MM-DD (UTC)")
    out.add_argument("--to", dest="day_to", required=True, help="last day, YYYY-MM-DD (UTC), included")
    out.add_argument("--tenant", help="only this tenant's rows")
    out.add_argument("--format", choices=exports.FORMATS, default="csv")
    out.add_argument("-o", "--output", help="write to this file (default: standard output)")
    out.set_defaults(command=run_export)


def run_export(settings: Settings, args: argparse.Namespace) -> int:
    since, until = finance.period(args.day_from, args.day_to)
    with _open_sink(args.output) as write:

        async def sink(chunk: bytes) -> None:
            write(chunk)

        with_services(
            settings, lambda services: exports.export(services, args.kind, since, until, args.tenant, args.format, sink)
        )
    return 0


@contextlib.contextmanager
def _open_sink(path: str | None) -> Iterator[Callable[[bytes], object]]:
    if path:
        # Written beside it and renamed once complete: a failed export leaves no half a file under that name.
        partial = f"{path}.partial"
        try:
            with open(partial, "wb") as file:
                yield file.write
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)
        return
    stdout = getattr(sys.stdout, "buffer", None)
    if stdout is not None:
        yield stdout.write
        stdout.flush()
        return
    yield lambda chunk: sys.stdout.write(chunk.decode())
