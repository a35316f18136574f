"""What admins manage: API keys (created and shown once, revoked; spend in the last 24 hours against the
budget), operators (created with a one-time password, disabled, reset), tenants (platform admins), and the
log of everything operators did."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import Response

from server import api_keys, operator_actions, operators, tenants
from server.operators import ROLES
from server.tenancy import APPROVERS, SCOPES
from webapp.console import rendering
from webapp.console.routing import console_router
from webapp.console.session import ActingDep, OperatorDep
from webapp.dependencies import ServicesDep

router = console_router()
Field = Annotated[str, Form()]
Checked = Annotated[list[str] | None, Form()]


@router.get("/keys")
async def keys(request: Request, services: ServicesDep, operator: OperatorDep) -> Response:
    operator.require("manage_keys")
    return await _keys_page(request, services, operator)


async def _keys_page(request, services, operator, issued=None) -> Response:
    listed = await api_keys.listing(services, operator.scope)
    spent = await api_keys.spend_last_day(services, operator.scope)
    choices = [operator.tenant_id] if operator.tenant_id else [tenant.id for tenant in await tenants.listing(services)]
    return await rendering.page(
        request, services, "keys.html", keys=listed, spent=spent, scopes=SCOPES, issued=issued,
        tenant_ids=choices, describe_budget=api_keys.describe_budget, approvers=APPROVERS,
        default_rate_per_minute=services.settings.rate_limit_per_minute,
    )  # fmt: skip


@router.post("/keys")
async def create_key(
    request: Request, services: ServicesDep, operator: ActingDep, tenant: Field = "", name: Field = "",
    scopes: Checked = None, budget: Field = "", budget_currency: Field = "", rate_per_minute: Field = "",
    approval: Field = "operator", back: Field = "",
) -> Response:  # fmt: skip
    """The key is shown on this answer only (not after a redirect: it is never stored)."""
    issued = await operator_actions.issue_key(
        services, operator, tenant_id=tenant, name=name, scopes=",".join(scopes or []), budget=budget,
        budget_currency=budget_currency, rate_per_minute=rate_per_minute, approval=approval,
    )  # fmt: skip
    return await _keys_page(request, services, operator, issued)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, services: ServicesDep, operator: ActingDep, key_id: str) -> Response:
    key = await operator_actions.revoke_key(services, operator, key_id)
    return await rendering.redirect(request, services, "/console/keys", f"Key {key.id} ({key.name}) is revoked.")


@router.get("/operators")
async def operators_page(request: Request, services: ServicesDep, operator: OperatorDep) -> Response:
    operator.require("manage_operators")
    return await _operators_page(request, services, operator)


async def _operators_page(request, services, operator, issued=None, said: str = "") -> Response:
    listed = await operators.listing(services, operator.tenant_id)
    choices = [] if operator.tenant_id else [tenant.id for tenant in await tenants.listing(services)]
    return await rendering.page(
        request, services, "operators.html", operators=listed, roles=ROLES, issued=issued, said=said,
        tenant_ids=choices,
    )  # fmt: skip


@router.post("/operators")
async def create_operator(
    request: Request, services: ServicesDep, operator: ActingDep, name: Field = "", role: Field = "",
    tenant: Field = "", back: Field = "",
) -> Response:  # fmt: skip
    issued = await operator_actions.create_operator(services, operator, name=name, role=role, tenant_id=tenant)
    return await _operators_page(request, services, operator, issued, f"Operator {issued.operator.name!r} created.")


@router.post("/operators/{name}/disable")
async def disable_operator(
    request: Request, services: ServicesDep, operator: ActingDep, name: str, back: Field = ""
) -> Response:
    disabled = await operator_actions.disable_operator(services, operator, name)
    said = f"Operator {disabled.name!r} is disabled; their sessions ended."
    return await rendering.redirect(request, services, "/console/operators", said)


@router.post("/operators/{name}/reset")
async def reset_operator(
    request: Request, services: ServicesDep, operator: ActingDep, name: str, back: Field = ""
) -> Response:
    issued = await operator_actions.reset_operator(services, operator, name)
    said = f"Operator {issued.operator.name!r} has a new one-time password; their sessions ended."
    return await _operators_page(request, services, operator, issued, said)


@router.get("/tenants")
async def tenants_page(request: Request, services: ServicesDep, operator: OperatorDep) -> Response:
    operator.require("manage_operators")
    listed = await tenants.listing(services) if operator.is_platform else []
    return await rendering.page(request, services, "tenants.html", tenants=listed)


@router.post("/tenants")
async def create_tenant(
    request: Request, services: ServicesDep, operator: ActingDep, tenant: Field = "", name: Field = "", back: Field = ""
) -> Response:
    created = await operator_actions.create_tenant(services, operator, tenant, name)
    said = f"Tenant {tenant.strip()!r} " + ("created." if created else "already exists.")
    return await rendering.redirect(request, services, "/console/tenants", said)


@router.post("/tenants/{tenant_id}/webhook-secret")
async def webhook_secret(
    request: Request, services: ServicesDep, operator: ActingDep, tenant_id: str, secret: Field = "", back: Field = ""
) -> Response:
    await operator_actions.set_tenant_webhook_secret(services, operator, tenant_id, secret)
    endpoint = f"{services.settings.base_url}/webhooks/stripe/{tenant_id}"
    said = f"{endpoint} now verifies with the given secret." if secret.strip() else f"{endpoint} is closed."
    return await rendering.redirect(request, services, "/console/tenants", said)


@router.get("/activity")
async def activity(request: Request, services: ServicesDep, operator: OperatorDep) -> Response:
    entries = await operators.audit_log(services, operator.scope)
    return await rendering.page(request, services, "activity.html", entries=entries)
