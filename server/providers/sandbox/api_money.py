"""The sandbox's disputes (retrieve; update with evidence and submit) and balance transactions (Stripe's
list, newest first, `created[gte]`/`created[lt]`, paged by `starting_after`, `expand[]=data.source`)."""

from __future__ import annotations

from typing import Any

import asyncpg
import stripe.params as stripe_params
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from server.providers.sandbox import movements
from server.providers.sandbox.events import emit
from server.providers.sandbox.requests import (
    Answer,
    SandboxError,
    check_known,
    flag,
    form,
    missing,
    query_params,
    read,
    run,
)

router = APIRouter(tags=["sandbox"])
EVIDENCE_TEXT_LIMIT = 20_000
UNSUPPORTED_FILTERS = frozenset({"currency", "ending_before", "payout", "source", "type"})
"""Stripe's list takes these too; the sandbox refuses them rather than answer as if it had filtered."""


@router.get("/v1/disputes/{dispute_id}")
async def retrieve_dispute(dispute_id: str, request: Request) -> JSONResponse:
    async def lookup(conn: asyncpg.Connection) -> dict[str, Any]:
        dispute = await movements.get_dispute(conn, dispute_id)
        if dispute is None:
            raise missing("dispute", dispute_id, "dispute")
        return dispute

    return await read(request, lookup)


@router.post("/v1/disputes/{dispute_id}")
async def update_dispute(dispute_id: str, request: Request) -> JSONResponse:
    params = await form(request, stripe_params.DisputeUpdateParams)
    evidence = params.get("evidence") or {}
    if not isinstance(evidence, dict):
        raise SandboxError(400, "evidence must be a hash of evidence fields.", param="evidence")
    check_known(evidence, stripe_params.DisputeUpdateParamsEvidence, "evidence")
    for name, value in evidence.items():
        if not isinstance(value, str) or len(value) > EVIDENCE_TEXT_LIMIT:
            raise SandboxError(400, f"evidence[{name}] must be text of at most 20000 characters.", param=name)

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        before = await movements.get_dispute(conn, dispute_id)
        if before is None:
            raise missing("dispute", dispute_id, "dispute")
        if before["status"] in ("won", "lost", "warning_closed", "prevented"):
            raise SandboxError(400, f"This dispute is already closed ({before['status']}).", code="dispute_closed")
        if (before["evidence_details"] or {}).get("submission_count", 0) > 0:  # as Stripe: evidence goes in once
            raise SandboxError(
                400,
                "This dispute's evidence has already been submitted; it cannot be changed.",
                code="dispute_already_submitted",
            )
        updated = await movements.submit_evidence(conn, dispute_id, evidence, flag(params, "submit"))
        await emit(conn, "charge.dispute.updated", updated, key)
        return Answer(200, updated)

    return await run(request, params, operation)


@router.get("/v1/balance_transactions")
async def list_balance_transactions(request: Request) -> JSONResponse:
    params = query_params(request)
    check_known(params, stripe_params.BalanceTransactionListParams)
    unsupported = sorted(set(params) & UNSUPPORTED_FILTERS)
    if unsupported:
        raise SandboxError(400, f"The sandbox does not filter balance transactions by {unsupported[0]}.")
    created = params.get("created") if isinstance(params.get("created"), dict) else {}
    query = movements.BalanceQuery(
        limit=_limit(params.get("limit")),
        created_gte=_timestamp(created.get("gte"), "created[gte]"),
        created_lt=_timestamp(created.get("lt"), "created[lt]"),
        starting_after=params.get("starting_after") or None,
    )
    expand = params.get("expand")
    expand_source = "data.source" in (expand.values() if isinstance(expand, dict) else [expand])

    async def lookup(conn: asyncpg.Connection) -> dict[str, Any]:
        page = await movements.list_balance_transactions(conn, query, expand_source=expand_source)
        if page is None:
            raise SandboxError(404, "No such balance transaction.", code="resource_missing", param="starting_after")
        data, has_more = page
        return {"object": "list", "url": "/v1/balance_transactions", "has_more": has_more, "data": data}

    return await read(request, lookup)


def _limit(value: Any) -> int:
    if value is None:
        return 10
    if not isinstance(value, str) or not value.isdigit() or not 1 <= int(value) <= 100:
        raise SandboxError(400, "limit must be an integer between 1 and 100.", param="limit")
    return int(value)


def _timestamp(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.isdigit():
        raise SandboxError(400, f"{name} must be a Unix timestamp.", param="created")
    return int(value)
