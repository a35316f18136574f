"""Customers: search, and one customer's entitlements, credits (balances and ledger) and payments."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server import customers
from server.errors import NotFound
from webapp.console import rendering
from webapp.console.routing import ConsoleRoute
from webapp.console.session import OperatorDep
from webapp.dependencies import ServicesDep

router = APIRouter(route_class=ConsoleRoute)


@router.get("/customers")
async def search(request: Request, services: ServicesDep, operator: OperatorDep, q: str = "") -> Response:
    found = await customers.search(services, operator.scope, q)
    return await rendering.page(request, services, "customers.html", found=found, q=q)


@router.get("/customer")
async def profile(
    request: Request, services: ServicesDep, operator: OperatorDep, id: str = "", tenant: str = ""
) -> Response:
    """`?tenant=T&id=C` (a customer id is only unique within its tenant)."""
    tenant_id = operator.tenant_id or tenant
    if not operator.may_see(tenant_id) or not tenant_id:
        raise NotFound(f"No customer {id!r}.")
    found = await customers.profile(services, tenant_id, id)
    return await rendering.page(request, services, "customer.html", customer=found, state_of=found.state_of)
