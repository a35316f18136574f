"""The operator console at /console: server-rendered pages (Jinja2) with htmx for partial updates, both served
from this package (no build step, nothing from a CDN); charts are SVG drawn on the server."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from webapp.console import admin, approvals, auth, customers, endpoints, inbox, overview, payments
from webapp.routing import add_routes

STATIC = Path(__file__).with_name("static")
PAGES = (auth, overview, approvals, payments, customers, inbox, endpoints, admin)


def install_console(app: FastAPI) -> None:
    """Mount the console at /console, its static files at /console/static, and send / to it."""
    add_routes(
        app, *(pages.router for pages in (auth, overview, approvals, payments, customers, inbox, endpoints, admin))
    )
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console", status_code=302)
