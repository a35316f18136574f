"""Finding payments across a tenant (or every tenant, for platform operators): filters as people type them,
keyset paging newest first, and the CSV export of everything a filter matches, streamed from PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import Field

from db import reports
from db.payments import Payment, PaymentStatus
from db.pool import connection
from db.reports import EXPORT_COLUMNS, PaymentQuery
from server.errors import InvalidRequest
from server.filters import day_after, day_start
from server.money import normalize_currency, parse_amount
from server.payments import PaymentView, decode_cursor, encode_cursor
from server.services import Services

__all__ = ["EXPORT_COLUMNS", "PaymentFilters", "PaymentSummary", "SearchPage", "export", "search"]
PAGE_SIZE = 50


class PaymentSummary(PaymentView):
    """A payment in a list that may span tenants: also whose it is and which key asked for it."""

    tenant_id: str
    api_key_id: str | None = Field(description="The API key that asked for it; None for a local caller.")

    @classmethod
    def of_payment(cls, payment: Payment) -> PaymentSummary:
        return cls.of(payment, tenant_id=payment.tenant_id, api_key_id=payment.api_key_id)  # type: ignore[return-value]


@dataclass(frozen=True, kw_only=True)
class SearchPage:
    payments: list[PaymentSummary]
    next_cursor: str | None


@dataclass(frozen=True, kw_only=True)
class PaymentFilters:
    """The filters as typed in a form (empty means any): a customer id or its beginning, a status, a
    product, a date range (UTC days, both included), an amount range in the currency's own units (which
    needs the currency), an API key id."""

    customer: str = ""
    status: str = ""
    product: str = ""
    date_from: str = ""
    date_to: str = ""
    amount_min: str = ""
    amount_max: str = ""
    currency: str = ""
    api_key: str = ""

    def query(self, tenant_id: str | None) -> PaymentQuery:
        """The database query these filters mean; InvalidRequest saying which filter to fix."""
        currency = normalize_currency(self.currency) if self.currency.strip() else None
        if (self.amount_min.strip() or self.amount_max.strip()) and currency is None:
            raise InvalidRequest("Choose a currency to filter by amount (amounts are in the currency's units).")
        return PaymentQuery(
            tenant_id=tenant_id,
            customer_prefix=self.customer.strip() or None,
            status=_status(self.status),
            product_id=self.product.strip() or None,
            created_from=day_start(self.date_from),
            created_before=day_after(self.date_to),
            min_amount_minor=_amount(self.amount_min, currency),
            max_amount_minor=_amount(self.amount_max, currency),
            currency=currency,
            api_key_id=self.api_key.strip() or None,
        )

    def as_params(self) -> dict[str, str]:
        """The filters that are set, for links to the next page and to the export."""
        return {name: value for name, value in vars(self).items() if value.strip()}


def _status(text: str) -> str | None:
    if not text.strip():
        return None
    try:
        return PaymentStatus(text.strip())
    except ValueError:
        raise InvalidRequest(f"Unknown status {text!r}; one of {', '.join(PaymentStatus)}.") from None


def _amount(text: str, currency: str | None) -> int | None:
    if not text.strip() or currency is None:
        return None
    amount = parse_amount(text, currency)
    if amount < 0:
        raise InvalidRequest(f"Amounts in a filter are not negative; got {text!r}.")
    return amount


async def search(
    services: Services,
    tenant_id: str | None,
    filters: PaymentFilters,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
) -> SearchPage:
    """One page of the payments the filters match, newest first; `cursor` continues where a page ended."""
    query = filters.query(tenant_id)
    after = decode_cursor(cursor) if cursor else None
    async with connection(services.pool) as conn:
        rows = await reports.payments_page(conn, query, limit + 1, after)
    shown, more = rows[:limit], len(rows) > limit
    return SearchPage(
        payments=[PaymentSummary.of_payment(payment) for payment in shown],
        next_cursor=encode_cursor(shown[-1].created_at, shown[-1].id) if more else None,
    )


def export(services: Services, tenant_id: str | None, filters: PaymentFilters) -> AsyncIterator[list[str]]:
    """Every payment the filters match, newest first, as rows of EXPORT_COLUMNS (text; amounts in minor
    units, times in ISO 8601 UTC), read from a server-side cursor while the caller writes them out.
    Bad filters are refused here, before the first row, so they are an error rather than a broken file."""
    return _exported_rows(services, filters.query(tenant_id))


async def _exported_rows(services: Services, query: PaymentQuery) -> AsyncIterator[list[str]]:
    async with connection(services.pool) as conn, conn.transaction(readonly=True):
        async for row in reports.payments_export(conn, query):
            yield [_cell(row[column]) for column in EXPORT_COLUMNS]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)
