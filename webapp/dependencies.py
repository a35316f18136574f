"""The services every route stands on, as a typed FastAPI dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.services import Services


def services_of(request: Request) -> Services:
    """The app's services, for code that answers outside a route's dependencies (its error pages)."""
    services = request.app.state.services
    assert isinstance(services, Services)  # build_webapp sets it before the first request
    return services


async def _services(request: Request) -> Services:
    """Async, though it awaits nothing: FastAPI runs a plain `def` dependency in its thread pool, a thread
    hand-off on every request."""
    return services_of(request)


ServicesDep = Annotated[Services, Depends(_services)]
