"""The reconciliation report for finance: every money movement the provider's balance shows in a period
(charges, refunds, disputes, with fees and net), matched against the ledger.

Sections: matched; at the provider but not in the ledger; in the ledger but not at the provider; amount,
currency or status mismatches — each line with both sides' ids and amounts. Totals per currency come from
the provider's side (what actually moved): gross (charges), refunds, disputes (withdrawals and
reinstatements), fees, net — and gross + refunds + disputes − fees = net.

With a tenant, the ledger side is that tenant's; provider movements of other tenants' payments are left out,
and a provider movement that matches nobody is shown to every tenant (it cannot say whose it is).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

from pydantic import BaseModel, Field

from db import finance
from db.finance import LedgerMovement
from db.pool import connection
from server import tenants
from server.errors import InvalidRequest
from server.ledger.payment_machine import CHARGED
from server.providers import BalanceMovement
from server.services import Services

SECTIONS = ("matched", "provider_only", "ledger_only", "mismatches")


class ReconcileLine(BaseModel):
    kind: str = Field(description="charge, refund, dispute or dispute_reversal.")
    currency: str
    provider_txn_id: str | None = None
    provider_id: str | None = Field(default=None, description="The provider's payment intent, refund or dispute.")
    provider_amount_minor: int | None = None
    fee_minor: int | None = None
    net_minor: int | None = None
    ledger_id: str | None = Field(default=None, description="paywarden's payment, refund or dispute id.")
    ledger_amount_minor: int | None = None
    ledger_status: str | None = None
    tenant_id: str | None = None
    problem: str | None = None


class CurrencyTotals(BaseModel):
    currency: str
    gross_minor: int = 0
    refunds_minor: int = 0
    disputes_minor: int = 0
    fees_minor: int = 0
    net_minor: int = 0


class ReconcileReport(BaseModel):
    period_from: datetime
    period_to: datetime
    tenant_id: str | None
    matched: list[ReconcileLine]
    provider_only: list[ReconcileLine]
    ledger_only: list[ReconcileLine]
    mismatches: list[ReconcileLine]
    totals: list[CurrencyTotals]

    @property
    def unmatched(self) -> int:
        return len(self.provider_only) + len(self.ledger_only) + len(self.mismatches)


def period(day_from: str, day_to: str) -> tuple[datetime, datetime]:
    """[start of day_from, end of day_to) in UTC, from ISO dates (or full ISO times)."""
    return _moment(day_from, end=False), _moment(day_to, end=True)


def _moment(text: str, *, end: bool) -> datetime:
    try:
        if len(text) == 10:
            day = date.fromisoformat(text) + timedelta(days=1 if end else 0)
            return datetime.combine(day, time(), UTC)
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise InvalidRequest(f"{text!r} is not a date; use YYYY-MM-DD (UTC) or an ISO 8601 time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


MARGIN = timedelta(days=2)
"""How far outside the period the provider's side is read for the ledger's rows: each side dates a movement
by its own clock (a charge applied by a webhook just after midnight, a refund settled the next day)."""


async def reconcile(services: Services, since: datetime, until: datetime, tenant_id: str | None) -> ReconcileReport:
    if until <= since:
        raise InvalidRequest("--to must be after --from.")
    await tenants.require_exists(services, tenant_id)
    wider = await services.provider.balance_movements(
        int((since - MARGIN).timestamp()), int((until + MARGIN).timestamp())
    )
    start, end = since.timestamp(), until.timestamp()
    in_period = [m for m in wider if m.kind != "other" and start <= m.created < end]
    nearby = [m for m in wider if m.kind != "other" and not start <= m.created < end]
    async with connection(services.pool) as conn:
        ledger = await finance.movements_between(conn, services.provider.name, since, until, tenant_id)
        ids = [(m.kind, pid) for m in in_period if (pid := _provider_id(m))]
        any_time = await finance.movements_by_provider_ids(conn, services.provider.name, ids)
    report = _match(in_period, ledger, any_time, nearby, tenant_id)
    return ReconcileReport(period_from=since, period_to=until, tenant_id=tenant_id, **report)


def _key(kind: str, provider_id: str | None) -> tuple[str, str | None]:
    return kind, provider_id


def _match(
    provider_side: list[BalanceMovement],
    ledger: list[LedgerMovement],
    any_time: list[LedgerMovement],
    nearby: list[BalanceMovement],
    tenant_id: str | None,
) -> dict[str, list]:
    """`any_time`: the ledger's records of the period's provider movements, whenever the ledger dates them;
    `nearby`: the provider's movements just outside the period, for the ledger's rows it dates otherwise
    (matched, but counted in no total: the provider moved that money in another period)."""
    in_period = {_key(m.kind, m.provider_id): m for m in ledger}
    elsewhere = {_key(m.kind, m.provider_id): m for m in any_time}
    sections: dict[str, list[ReconcileLine]] = {name: [] for name in SECTIONS}
    counted: list[BalanceMovement] = []
    for movement in provider_side:
        key = _key(movement.kind, _provider_id(movement))
        recorded = in_period.pop(key, None) or elsewhere.get(key)
        if recorded is not None and tenant_id is not None and recorded.tenant_id != tenant_id:
            continue  # another tenant's money
        counted.append(movement)
        _place(sections, movement, recorded)
    moved_nearby = {_key(m.kind, _provider_id(m)): m for m in nearby}
    for key, recorded in in_period.items():
        if key in moved_nearby:
            _place(sections, moved_nearby[key], recorded)
        else:
            sections["ledger_only"].append(_line(None, recorded).model_copy(update={"problem": "not at the provider"}))
    return {**sections, "totals": _totals(counted)}


def _place(
    sections: dict[str, list[ReconcileLine]], movement: BalanceMovement, recorded: LedgerMovement | None
) -> None:
    line = _line(movement, recorded)
    if recorded is None:
        sections["provider_only"].append(line.model_copy(update={"problem": "not in the ledger"}))
    elif problem := _problem(movement, recorded):
        sections["mismatches"].append(line.model_copy(update={"problem": problem}))
    else:
        sections["matched"].append(line)


def _provider_id(movement: BalanceMovement) -> str | None:
    return {
        "charge": movement.provider_payment_id,
        "refund": movement.provider_refund_id,
    }.get(movement.kind, movement.provider_dispute_id)


def _line(movement: BalanceMovement | None, recorded: LedgerMovement | None) -> ReconcileLine:
    line = ReconcileLine(kind=(movement or recorded).kind, currency=(movement or recorded).currency)  # type: ignore[union-attr]
    if movement is not None:
        line = line.model_copy(
            update={
                "provider_txn_id": movement.provider_txn_id,
                "provider_id": _provider_id(movement),
                "provider_amount_minor": movement.amount_minor,
                "fee_minor": movement.fee_minor,
                "net_minor": movement.net_minor,
            }
        )
    if recorded is not None:
        line = line.model_copy(
            update={
                "provider_id": line.provider_id or recorded.provider_id,
                "ledger_id": recorded.ledger_id,
                "ledger_amount_minor": recorded.amount_minor,
                "ledger_status": recorded.status,
                "tenant_id": recorded.tenant_id,
            }
        )
    return line


def _problem(movement: BalanceMovement, recorded: LedgerMovement) -> str | None:
    """Compared in the currency of the payment (an account may settle it in another)."""
    currency = movement.source_currency or movement.currency
    moved = movement.source_amount_minor if movement.source_amount_minor is not None else movement.amount_minor
    if currency != recorded.currency:
        return f"currency differs: provider {currency}, ledger {recorded.currency}"
    if moved != recorded.amount_minor:
        return f"amount differs: provider {moved}, ledger {recorded.amount_minor}"
    if movement.kind == "charge" and recorded.status not in CHARGED:
        return f"status differs: the provider charged it, the ledger says {recorded.status}"
    return None


def _totals(movements: list[BalanceMovement]) -> list[CurrencyTotals]:
    totals: dict[str, CurrencyTotals] = defaultdict(lambda: CurrencyTotals(currency=""))
    for movement in movements:
        total = totals[movement.currency]
        total.currency = movement.currency
        field = {"charge": "gross_minor", "refund": "refunds_minor"}.get(movement.kind, "disputes_minor")
        setattr(total, field, getattr(total, field) + movement.amount_minor)
        total.fees_minor += movement.fee_minor
        total.net_minor += movement.net_minor
    return [totals[currency] for currency in sorted(totals)]
