"""The services every route stands on, as a typed FastAPI dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.services import Services


def _services(request: Request) -> Services:
    services = request.app.state.services
    assert isinstance(services, Services)  # build_webapp sets it before the first request
    return services


ServicesDep = Annotated[Services, Depends(_services)]
