"""How the app takes its routers' routes: as they are, onto its own route table.

FastAPI's `include_router` keeps an included router nested: each new app resolves every route's dependencies
again on its first request, and every request walks the nested routers (and their version counters) on its way
to a route. Routers here are made complete where they are created (prefix, guards, schema visibility), so the
app takes their routes, built once per process, as one flat table."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI


def add_routes(app: FastAPI, *routers: APIRouter) -> None:
    for router in routers:
        app.router.routes.extend(router.routes)
