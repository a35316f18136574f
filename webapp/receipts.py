"""The receipt page a payment's holder opens (GET /receipts/<token>): printable, cached by nobody, told
apart from a missing one by nothing but its token."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from server import receipts
from server.errors import NotFound
from webapp.dependencies import ServicesDep

router = APIRouter(include_in_schema=False)
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
)
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is the address: never leak it to another site
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
}


@router.get("/receipts/{token}", response_class=HTMLResponse)
async def receipt_page(token: str, services: ServicesDep) -> HTMLResponse:
    try:
        shown = await receipts.receipt(services, token)
    except NotFound:
        page = _templates.get_template("receipt_missing.html").render()
        return HTMLResponse(page, status_code=404, headers=HEADERS)
    return HTMLResponse(_templates.get_template("receipt.html").render(r=shown, utc=_utc), headers=HEADERS)


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
