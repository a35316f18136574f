"""/healthz, /readyz, /metrics, and the pages the provider sends a person back to (after paying, after
leaving a payment page, after saving a card or not)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import HTMLResponse, JSONResponse, Response

from server import metrics
from webapp.dependencies import ServicesDep

router = APIRouter(include_in_schema=False)


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
async def prometheus_metrics(services: ServicesDep, authorization: Annotated[str | None, Header()] = None) -> Response:
    """Prometheus text format: in-process counters only. With PAYWARDEN_METRICS_TOKEN, only for its bearer."""
    token = services.settings.metrics_token
    if token is not None and not _is_bearer(authorization, token.get_secret_value()):
        return JSONResponse(
            {"error": "metrics need Authorization: Bearer <PAYWARDEN_METRICS_TOKEN>"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


def _is_bearer(authorization: str | None, token: str) -> bool:
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@router.get("/payments/complete", response_class=HTMLResponse)
async def payment_complete() -> HTMLResponse:
    """Where the provider sends the person back after paying (Stripe's return_url)."""
    return HTMLResponse(
        "<!doctype html><title>Payment submitted</title><p>Payment submitted. "
        "You can close this window and return to the conversation.</p>"
    )


@router.get("/payments/canceled", response_class=HTMLResponse)
async def payment_not_completed() -> HTMLResponse:
    """Where the provider's payment page sends a person who left it without paying (Checkout's cancel_url)."""
    return _back_page(
        "Payment not completed",
        "Nothing was charged. The payment page stays open until it expires, if you change your mind.",
    )


@router.get("/cards/saved", response_class=HTMLResponse)
async def card_saved() -> HTMLResponse:
    return _back_page("Card saved", "Your card is saved for later payments.")


@router.get("/cards/not-saved", response_class=HTMLResponse)
async def card_not_saved() -> HTMLResponse:
    return _back_page("Card not saved", "No card was saved.")


def _back_page(title: str, detail: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><title>{title}</title><p>{detail} "
        "You can close this window and return to the conversation.</p>"
    )
