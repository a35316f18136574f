"""Customers: search; one customer as get_customer and `paywarden customers show` see them (saved cards, the
provider customer, access, balances) with their payments, credit ledger and history; linking one to an
existing provider customer (`paywarden customers link`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import Response

from server import customers, operator_actions, tenants
from server.errors import NotFound
from webapp.console import rendering
from webapp.console.routing import console_router
from webapp.console.session import ActingDep, OperatorDep
from webapp.dependencies import ServicesDep

router = console_router()
Field = Annotated[str, Form()]


@router.get("/customers")
async def search(request: Request, services: ServicesDep, operator: OperatorDep, q: str = "") -> Response:
    found = await customers.search(services, operator.scope, q)
    choices = [] if operator.tenant_id else [tenant.id for tenant in await tenants.listing(services)]
    return await rendering.page(request, services, "customers.html", found=found, q=q, tenant_ids=choices)


@router.get("/customer")
async def profile(
    request: Request, services: ServicesDep, operator: OperatorDep, id: str = "", tenant: str = ""
) -> Response:
    """`?tenant=T&id=C` (a customer id is only unique within its tenant)."""
    tenant_id = operator.tenant_id or tenant
    if not operator.may_see(tenant_id) or not tenant_id:
        raise NotFound(f"No customer {id!r}.")
    found = await customers.profile(services, tenant_id, id)
    return await rendering.page(request, services, "customer.html", profile=found, customer=found.customer)


@router.post("/customers/link")
async def link(
    request: Request, services: ServicesDep, operator: ActingDep, tenant: Field = "", customer_id: Field = "",
    provider_customer_id: Field = "", force: Field = "", back: Field = "",
) -> Response:  # fmt: skip
    """Refused with the reason back on the page it came from (unknown at the provider, linked elsewhere)."""
    result = await operator_actions.link_customer(
        services, operator, tenant_id=tenant, customer_id=customer_id, provider_customer_id=provider_customer_id,
        force=bool(force),
    )  # fmt: skip
    linked = result.customer
    previous = result.previous_provider_customer_id
    said = f"{linked.customer_id} is linked to {linked.provider_customer_id}"
    said += f" (was {previous})" if previous not in (None, linked.provider_customer_id) else ""
    said += f"; {result.cards_imported} saved card(s) imported from the provider."
    to = f"/console/customer{rendering.query(tenant=result.tenant_id, id=linked.customer_id)}"
    return await rendering.redirect(request, services, to, said)
