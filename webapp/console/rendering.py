"""Jinja2 templates of the console, rendered on the server (autoescaped), with the helpers they use."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from server import approvals, tenants
from server.money import EXPONENTS, format_amount
from server.operators import SignedIn
from server.services import Services
from webapp.console import charts, session

TEMPLATES = Path(__file__).with_name("templates")
HTMX = "htmx-4.0.1.min.js"
PAYMENT_ID = re.compile(r"\bpay_[0-9a-f]{24}\b")
NO_STORE = {
    "Cache-Control": "no-store",
    "Vary": "HX-Request, Cookie",
    # Scripts only from the console's own files (htmx, console.js): no inline script, no eval, no other site.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
"""Headers of every console answer: never cached (payments, secrets shown once), never framed."""


def when(moment: datetime | None) -> Markup:
    """A time in UTC, in a <time> element (machines read the ISO form)."""
    if moment is None:
        return Markup("—")
    utc = moment.astimezone(UTC)
    return Markup('<time datetime="{}">{:%Y-%m-%d %H:%M:%S} UTC</time>').format(utc.isoformat(), utc)


def money(amount_minor: int | None, currency: str) -> str:
    return "—" if amount_minor is None else format_amount(amount_minor, currency)


def plain_amount(amount_minor: int, currency: str) -> str:
    """`1250, "USD"` → `12.50`: for a form field's value."""
    return format_amount(amount_minor, currency).rsplit(" ", 1)[0]


def link_payments(text: str | None) -> Markup:
    """Text with every payment id in it made a link to that payment (the rest escaped)."""
    if not text:
        return Markup("")
    parts, last = [], 0
    for found in PAYMENT_ID.finditer(text):
        parts.append(escape(text[last : found.start()]))
        parts.append(Markup('<a href="/console/payments/{0}">{0}</a>').format(found.group()))
        last = found.end()
    parts.append(escape(text[last:]))
    return Markup("").join(parts)


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def query(**params: Any) -> str:
    """`?a=1&b=2` of the params that are set (for links that keep the filters)."""
    kept = {name: value for name, value in params.items() if value not in (None, "")}
    return "?" + urlencode(kept) if kept else ""


ENVIRONMENT = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=StrictUndefined,  # a name a template uses but nobody passed is an error, never a silent blank
)
ENVIRONMENT.filters.update(when=when, link_payments=link_payments, pretty_json=pretty_json)
ENVIRONMENT.globals.update(
    money=money, plain_amount=plain_amount, query=query, bar_chart=charts.bar_chart, htmx=HTMX, exponents=EXPONENTS
)


async def page(
    request: Request, services: Services, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A whole page (or, for `_fragment` templates, a piece htmx swaps in), with what every page shows: the
    operator, their CSRF token, the tenant switcher, what waits for approval, and a message from the last
    action."""
    signed_in: SignedIn | None = getattr(request.state, "operator", None)
    common: dict[str, Any] = {
        "request": request,
        "operator": signed_in,
        "flash": await session.take_flash(request, services),
        "csrf": signed_in.csrf_token if signed_in else "",
        "waiting": 0,
        "tenant_choices": [],
        "error": None,
    }
    if signed_in is not None and not signed_in.must_choose_password:
        common["waiting"] = await approvals.waiting(services, signed_in.scope)
        if signed_in.is_platform:
            common["tenant_choices"] = [tenant.id for tenant in await tenants.listing(services)]
    html = ENVIRONMENT.get_template(template).render({**common, **context})
    response = HTMLResponse(html, status_code=status_code, headers=NO_STORE)
    if common["flash"] is not None:
        session.clear_cookie(response, services, session.FLASH_COOKIE)
    return response


async def redirect(
    request: Request, services: Services, to: str, message: str | None = None, kind: str = "ok"
) -> RedirectResponse:
    """303 to another console page (POST, redirect, GET), with a message shown there once."""
    response = RedirectResponse(to, status_code=303, headers=NO_STORE)
    if message:
        await session.flash(request, response, services, message, kind)
    return response


def local_path(target: str | None, default: str = "/console") -> str:
    """Where to send someone back to: only a path of the console itself (never another site)."""
    if target and target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return default
