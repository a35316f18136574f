"""The services every route stands on, as a typed FastAPI dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.services import Services


async def _services(request: Request) -> Services:
    """Async, though it awaits nothing: FastAPI runs a plain `def` dependency in its thread pool, a thread
    hand-off on every request."""
    services = request.app.state.services
    assert isinstance(services, Services)  # build_webapp sets it before the first request
    return services


ServicesDep = Annotated[Services, Depends(_services)]
