"""/healthz, /readyz, /metrics, and the page the provider sends a person back to after paying."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, Response

from server import metrics
from webapp.dependencies import ServicesDep

router = APIRouter()


@router.get("/healthz")
async def healthz(services: ServicesDep) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok", "provider": services.provider.name})


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    """Readiness: the database answers too (503, with the reason, when it does not)."""
    await services.ping_database()
    return JSONResponse({"status": "ready", "database": "ok", "provider": services.provider.name})


@router.get("/metrics")
async def prometheus_metrics() -> Response:
    """Prometheus text format."""
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


@router.get("/payments/complete", response_class=HTMLResponse)
async def payment_complete() -> HTMLResponse:
    """Where the provider sends the person back after paying (Stripe's return_url)."""
    return HTMLResponse(
        "<!doctype html><title>Payment submitted</title><p>Payment submitted. "
        "You can close this window and return to the conversation.</p>"
    )
