"""The overview: payments per day, by status and currency; what waits; inbox problems; the reconciler."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from server import operator_actions, overview
from server.money import format_amount
from webapp.console import rendering
from webapp.console.charts import Series
from webapp.console.routing import console_router
from webapp.console.session import ActingDep, OperatorDep
from webapp.dependencies import ServicesDep

router = console_router()


@router.get("")
async def overview_page(request: Request, services: ServicesDep, operator: OperatorDep, days: int = 7) -> Response:
    numbers = await overview.overview(services, operator.scope, overview.check_range(days))
    labels = [f"{day.day:%m-%d}" for day in numbers.per_day]
    counts = [
        Series("succeeded", [day.succeeded for day in numbers.per_day], "#16a34a"),
        Series("other", [day.payments - day.succeeded for day in numbers.per_day], "#94a3b8"),
    ]
    volumes = {
        currency: [Series("taken", paid, "#2563eb")] for currency, paid in list(numbers.paid_per_day.items())[:4]
    }
    return await rendering.page(
        request, services, "overview.html", numbers=numbers, labels=labels, counts=counts, volumes=volumes,
        ranges=overview.RANGES, amount_in=lambda currency: lambda minor: format_amount(minor, currency),
    )  # fmt: skip


@router.post("/reconcile")
async def reconcile(request: Request, services: ServicesDep, operator: ActingDep) -> Response:
    report = await operator_actions.reconcile(services, operator)
    kind = "error" if report.errors else "ok"
    return await rendering.redirect(request, services, "/console", f"Reconciler: {report.summary()}.", kind)
