"""Payments: filtered and paged, exported as CSV, and one payment with everything that happened to it —
approve / reject when it waits, refund (with a confirm step) when it is paid."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import Response, StreamingResponse

from server import api_keys, operator_actions, payment_history, payment_search
from server.payment_search import EXPORT_COLUMNS, PaymentFilters
from server.payments import PaymentStatus
from webapp.console import rendering
from webapp.console.routing import console_router
from webapp.console.session import ActingDep, OperatorDep
from webapp.dependencies import ServicesDep

router = console_router()
Field = Annotated[str, Form()]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def filters_of(request: Request) -> PaymentFilters:
    """The filters in the query string (unknown ones ignored)."""
    params = request.query_params
    return PaymentFilters(**{name: params.get(name, "") for name in PaymentFilters.__dataclass_fields__})


@router.get("/payments")
async def listing(request: Request, services: ServicesDep, operator: OperatorDep, cursor: str = "") -> Response:
    filters = filters_of(request)
    found = await payment_search.search(services, operator.scope, filters, cursor or None)
    keys = await api_keys.listing(services, operator.scope)
    return await rendering.page(
        request, services, "payments.html", filters=filters, found=found, statuses=list(PaymentStatus), keys=keys,
        params=filters.as_params(),
    )  # fmt: skip


@router.get("/payments.csv")
async def export(request: Request, services: ServicesDep, operator: OperatorDep) -> Response:
    """The filtered payments as CSV (columns: EXPORT_COLUMNS), streamed as PostgreSQL hands them over."""
    rows = payment_search.export(services, operator.scope, filters_of(request))
    headers = {"Content-Disposition": 'attachment; filename="payments.csv"', **rendering.NO_STORE}
    return StreamingResponse(_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)


async def _csv(rows: AsyncIterator[list[str]]) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    async for row in rows:
        writer.writerow([_inert(cell) for cell in row])
        if buffer.tell() > 64 * 1024:
            yield _drain(buffer)
    yield _drain(buffer)


def _inert(cell: str) -> str:
    """A cell a spreadsheet would run as a formula (an agent chose the customer id or description) is
    prefixed with an apostrophe."""
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


@router.get("/payments/{payment_id}")
async def detail(request: Request, services: ServicesDep, operator: OperatorDep, payment_id: str) -> Response:
    history = await payment_history.history(services, payment_id, operator.tenant_id)
    return await rendering.page(
        request, services, "payment.html", history=history, payment=history.payment,
        refund_key=secrets.token_urlsafe(16),
    )  # fmt: skip


@router.post("/payments/{payment_id}/refund")
async def confirm_refund(
    request: Request, services: ServicesDep, operator: ActingDep, payment_id: str, amount: Field = "",
    reason: Field = "", idempotency_key: Field = "", back: Field = "",
) -> Response:  # fmt: skip
    """The confirm step: what would be refunded, and a button that does it (nothing is refunded yet)."""
    history, amount_minor = await operator_actions.preview_refund(services, operator, payment_id, amount)
    return await rendering.page(
        request, services, "refund_confirm.html", payment=history.payment, history=history, amount_minor=amount_minor,
        amount=amount, reason=reason, idempotency_key=idempotency_key or secrets.token_urlsafe(16),
    )  # fmt: skip


@router.post("/payments/{payment_id}/refund/confirm")
async def refund(
    request: Request, services: ServicesDep, operator: ActingDep, payment_id: str, amount: Field = "",
    reason: Field = "", idempotency_key: Field = "", back: Field = "",
) -> Response:  # fmt: skip
    result = await operator_actions.refund(
        services, operator, payment_id, idempotency_key=idempotency_key, amount=amount, reason=reason
    )
    said = f"Refund {result.refund_id} of {result.amount_display}: {result.status}."
    if result.replayed:
        said += " (This form was already submitted: that refund was made once, not again.)"
    if result.failure_reason:
        said += f" {result.failure_reason}"
    kind = "error" if result.status in ("failed", "canceled") else "ok"
    return await rendering.redirect(request, services, f"/console/payments/{payment_id}", said, kind)
