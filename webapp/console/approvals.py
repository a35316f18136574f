"""The approval queue, oldest first, decided in place (htmx swaps the row; without JavaScript, a form post)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import Response

from server import approvals, operator_actions
from server.errors import PaywardenError, for_operator
from server.operators import SignedIn
from server.services import Services
from webapp.console import rendering
from webapp.console.routing import console_router
from webapp.console.session import ActingDep, OperatorDep
from webapp.dependencies import ServicesDep

router = console_router()
Field = Annotated[str, Form()]


@router.get("/approvals")
async def queue(request: Request, services: ServicesDep, operator: OperatorDep) -> Response:
    waiting = await approvals.queue(services, operator.scope)
    return await rendering.page(request, services, "approvals.html", queue=waiting)


@router.post("/payments/{payment_id}/approve")
async def approve(
    request: Request, services: ServicesDep, operator: ActingDep, payment_id: str, back: Field = ""
) -> Response:
    return await _decide(request, services, operator, payment_id, back, "approve", "")


@router.post("/payments/{payment_id}/reject")
async def reject(
    request: Request, services: ServicesDep, operator: ActingDep, payment_id: str, back: Field = "", reason: Field = ""
) -> Response:
    return await _decide(request, services, operator, payment_id, back, "reject", reason)


async def _decide(
    request: Request, services: Services, operator: SignedIn, payment_id: str, back: str, decision: str, reason: str
) -> Response:
    """In place (htmx, from the queue): the row becomes the outcome. Otherwise: back to the page, with it said."""
    in_place = request.headers.get("HX-Request") == "true" and request.headers.get("HX-Target", "").endswith(
        f"#row-{payment_id}"
    )
    try:
        if decision == "approve":
            payment = await operator_actions.approve(services, operator, payment_id)
        else:
            payment = await operator_actions.reject(services, operator, payment_id, reason)
    except PaywardenError as error:
        if not in_place or error.status in (403, 404):
            raise
        return await rendering.page(
            request, services, "_decided_row.html", payment_id=payment_id, error=for_operator(error)
        )
    said = (
        f"{payment.id} {'approved' if decision == 'approve' else 'rejected'} by {operator.name}: now {payment.status}."
    )
    if payment.status == "requires_action" and payment.next_action_url:
        said += f" The person must now pay on this page: {payment.next_action_url}"
    if in_place:
        return await rendering.page(
            request, services, "_decided_row.html", payment_id=payment_id, said=said, payment=payment
        )
    to = rendering.local_path(back, f"/console/payments/{payment_id}")
    return await rendering.redirect(request, services, to, said)
