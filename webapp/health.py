"""/healthz: the service is up and its database answers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from db.pool import connection
from server import metrics

router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok", "provider": request.app.state.provider.name})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers too (503, with the reason, when it does not)."""
    async with connection(request.app.state.pool) as conn:
        await conn.fetchval("SELECT 1")
    return JSONResponse({"status": "ready", "database": "ok", "provider": request.app.state.provider.name})


@router.get("/metrics")
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus text format; payments by status are read from the database at scrape time."""
    async with connection(request.app.state.pool) as conn:
        counts = await conn.fetch("SELECT status, count(*) AS n FROM payments GROUP BY status")
    metrics.PAYMENTS.clear()
    for row in counts:
        metrics.PAYMENTS.labels(row["status"]).set(row["n"])
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/payments/complete", response_class=HTMLResponse)
async def payment_complete() -> HTMLResponse:
    """Where the provider sends the person back after paying (Stripe's return_url)."""
    return HTMLResponse(
        "<!doctype html><title>Payment submitted</title><p>Payment submitted. "
        "You can close this window and return to the conversation.</p>"
    )
