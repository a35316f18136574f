"""The webhook inbox: problems first, filtered by outcome, type and date; one event in full; replay."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import Response

from server import inbox, operator_actions
from server.errors import NotFound
from server.inbox import NO_ACTION, PROBLEMS, InboxFilters
from webapp.console import rendering
from webapp.console.routing import console_router
from webapp.console.session import ActingDep, OperatorDep
from webapp.dependencies import ServicesDep

router = console_router()
Field = Annotated[str, Form()]
OUTCOME_CHOICES = ("all", "problems", "no_action", *PROBLEMS, "applied", *NO_ACTION)


@router.get("/inbox")
async def listing(request: Request, services: ServicesDep, operator: OperatorDep) -> Response:
    params = request.query_params
    filters = InboxFilters(**{name: params.get(name, "") for name in InboxFilters.__dataclass_fields__})
    events = await inbox.search(services, operator.scope, filters)
    types = await inbox.event_types(services, operator.scope)
    return await rendering.page(
        request, services, "inbox.html", events=events, filters=filters, outcomes=OUTCOME_CHOICES, types=types
    )


@router.get("/inbox/{inbox_id}")
async def event(request: Request, services: ServicesDep, operator: OperatorDep, inbox_id: str) -> Response:
    stored = await inbox.event(services, _number(inbox_id), operator.tenant_id)
    return await rendering.page(request, services, "event.html", event=stored)


@router.post("/inbox/{inbox_id}/replay")
async def replay(
    request: Request, services: ServicesDep, operator: ActingDep, inbox_id: str, back: Field = ""
) -> Response:
    result = await operator_actions.replay(services, operator, _number(inbox_id))
    stored = await inbox.event(services, _number(inbox_id), operator.tenant_id)
    said = f"Replayed {stored.event_id}: {result.outcome}" + (f" ({result.note})" if result.note else "") + "."
    kind = "error" if result.outcome in ("failed", "parked", "unknown") else "ok"
    to = rendering.local_path(back, f"/console/inbox/{inbox_id}")
    return await rendering.redirect(request, services, to, said, kind)


def _number(inbox_id: str) -> int:
    if not inbox_id.isdigit() or len(inbox_id) > 18:
        raise NotFound(f"No stored webhook event {inbox_id!r}.")
    return int(inbox_id)
