"""The sandbox's HTTP face, an application the HTTP adapter mounts at /sandbox: Stripe's payment-intent,
refund and event endpoints and the page where a person authenticates a payment here; customers,
payment methods and setup intents (api_customers.py); Checkout Sessions and their pages (api_checkout.py)."""

from __future__ import annotations

from typing import Any

import asyncpg
import stripe.params as stripe_params
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from server.providers.sandbox import (
    api_billing,
    api_checkout,
    api_customers,
    api_money,
    intents,
    movements,
    pages,
    store,
)
from server.providers.sandbox.events import emit
from server.providers.sandbox.intents import Outcome
from server.providers.sandbox.requests import (
    Answer,
    SandboxError,
    SandboxState,
    form,
    missing,
    query_params,
    read,
    run,
    state_of,
    text,
)

router = APIRouter(tags=["sandbox"])
DATABASE_GONE = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError)


def build_app(state: SandboxState) -> FastAPI:
    """The sandbox as an application of its own, to be mounted at /sandbox."""
    app = FastAPI(title="paywarden sandbox provider", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = state
    # The routes themselves, as one flat table (include_router would rebuild them for every app and walk
    # nested routers on every request).
    for routes in (router, api_customers.router, api_checkout.router, api_money.router, api_billing.router):
        app.router.routes.extend(routes.routes)
    app.add_exception_handler(SandboxError, _stripe_shaped_error)
    for unavailable in DATABASE_GONE:
        app.add_exception_handler(unavailable, _database_gone)
    return app


async def _stripe_shaped_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, SandboxError)
    return JSONResponse(error.body, error.status)


async def _database_gone(request: Request, error: Exception) -> JSONResponse:
    """Stripe answers 5xx when it has trouble of its own; clients retry those."""
    unavailable = SandboxError(503, "The sandbox's database is not answering; retry shortly.", type_="api_error")
    return JSONResponse(unavailable.body, unavailable.status)


@router.post("/v1/payment_intents")
async def create_payment_intent(request: Request) -> JSONResponse:
    params = await form(request, stripe_params.PaymentIntentCreateParams)
    base = state_of(request).base_url

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        customer = await api_customers.existing_customer_id(conn, text(params, "customer", 255))
        card = await api_customers.chosen_card(conn, params.get("payment_method"), customer)
        return await persisted(conn, intents.new_intent(params, card, base), key)

    return await run(request, params, operation)


@router.get("/v1/payment_intents/{intent_id}")
async def retrieve_payment_intent(intent_id: str, request: Request) -> JSONResponse:
    return await read(request, lambda conn: existing_intent(conn, intent_id, lock=False))


@router.post("/v1/payment_intents/{intent_id}/confirm")
async def confirm_payment_intent(intent_id: str, request: Request) -> JSONResponse:
    params = await form(request, stripe_params.PaymentIntentConfirmParams)
    base = state_of(request).base_url

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        intent = await existing_intent(conn, intent_id, lock=True)
        card = await api_customers.chosen_card(
            conn, params.get("payment_method") or intent.get("payment_method"), intent.get("customer")
        )
        if card is None:
            raise SandboxError(400, "You must provide a payment_method to confirm.", param="payment_method")
        off_session = params.get("off_session") in ("true", True)
        confirmed = intents.confirm(
            intent, card, base, off_session=off_session, return_url=text(params, "return_url", 2000)
        )
        return await persisted(conn, confirmed, key)

    return await run(request, params, operation)


@router.post("/v1/payment_intents/{intent_id}/cancel")
async def cancel_payment_intent(intent_id: str, request: Request) -> JSONResponse:
    params = await form(request, stripe_params.PaymentIntentCancelParams)

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        intent = await existing_intent(conn, intent_id, lock=True)
        if await api_customers.session_of_intent(conn, intent_id):
            raise SandboxError(
                400,
                "You cannot cancel this PaymentIntent because it belongs to a Checkout Session; expire the session.",
                code="payment_intent_unexpected_state",
            )
        return await persisted(conn, intents.cancel(intent, params.get("cancellation_reason")), key)

    return await run(request, params, operation)


@router.post("/v1/refunds")
async def create_refund(request: Request) -> JSONResponse:
    params = await form(request, stripe_params.RefundCreateParams)

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        intent_id = params.get("payment_intent")
        if not isinstance(intent_id, str):
            raise SandboxError(400, "Missing required param: payment_intent.", param="payment_intent")
        intent = await existing_intent(conn, intent_id, lock=True)
        if await movements.charged_back(conn, intent_id):
            charge = intent.get("latest_charge") or intent_id
            raise SandboxError(
                400, f"Charge {charge} has been charged back; cannot issue a refund.", code="charge_disputed"
            )
        refund, events = intents.new_refund(intent, params, await store.refunded_total(conn, intent_id))
        await store.insert_refund(conn, refund)
        for event_type, obj in events:
            await emit(conn, event_type, obj, key)
        return Answer(200, refund)

    return await run(request, params, operation)


@router.get("/v1/refunds/{refund_id}")
async def retrieve_refund(refund_id: str, request: Request) -> JSONResponse:
    async def lookup(conn: asyncpg.Connection) -> dict[str, Any]:
        refund = await store.get_refund(conn, refund_id)
        if refund is None:
            raise missing("refund", refund_id)
        return refund

    return await read(request, lookup)


@router.get("/v1/events")
async def list_events(request: Request) -> JSONResponse:
    """Stripe's event list: newest first, paged by `starting_after` (older) or `ending_before` (newer)."""
    params = query_params(request)
    query = store.EventQuery(
        limit=_limit(params.get("limit")),
        starting_after=_text(params.get("starting_after")),
        ending_before=_text(params.get("ending_before")),
        created_gte=_created_bound(params.get("created")),
    )

    async def lookup(conn: asyncpg.Connection) -> dict[str, Any]:
        page = await store.list_events(conn, query)
        if page is None:
            cursor = query.starting_after or query.ending_before or ""
            raise SandboxError(404, f"No such event: '{cursor[:64]}'", code="resource_missing", param="starting_after")
        events, has_more = page
        return {"object": "list", "url": "/v1/events", "has_more": has_more, "data": events}

    return await read(request, lookup)


@router.get("/")
async def about() -> JSONResponse:
    return JSONResponse(
        {
            "sandbox": "paywarden's local, Stripe-compatible payment provider; no real money moves",
            "api": "/sandbox/v1/… (Bearer KEY, or curl -u KEY: with the key `paywarden sandbox key` prints)",
            "hosted_pages": "/sandbox/pay/{payment_intent_id}, /sandbox/checkout/{checkout_session_id}",
        }
    )


@router.get("/pay/{intent_id}", response_class=HTMLResponse)
async def hosted_payment_page(intent_id: str, request: Request) -> HTMLResponse:
    async with state_of(request).pool.acquire() as conn:
        intent = await store.get_intent(conn, intent_id)
    if intent is None:
        return pages.page("Payment not found", "<p>There is no payment at this address.</p>", 404)
    return pages.page("Confirm payment", pages.payment_form(intent))


@router.post("/pay/{intent_id}/{decision}", response_class=HTMLResponse)
async def hosted_payment_decision(intent_id: str, decision: str, request: Request) -> HTMLResponse:
    act = {"pay": intents.pay_on_hosted_page, "decline": intents.decline_on_hosted_page}.get(decision)
    if act is None:
        return pages.page("Unknown action", "<p>Use the Pay or Decline button.</p>", 404)
    state = state_of(request)
    try:
        async with state.pool.acquire() as conn, conn.transaction():
            outcome = act(await existing_intent(conn, intent_id, lock=True))
            await persisted(conn, outcome, None)
    except SandboxError as error:
        return pages.page("Nothing to do", f"<p>{error.body['error']['message']}</p>", error.status)
    state.wake_deliverer()
    done = "Payment succeeded" if outcome.intent["status"] == "succeeded" else "Payment declined"
    return pages.done(done, f"{done}.")


async def persisted(conn: asyncpg.Connection, outcome: Outcome, key: str | None) -> Answer:
    """Store the intent and its events; answer with the intent, or with the error the outcome carries."""
    await store.put(conn, outcome.intent)
    for event_type in outcome.event_types:
        await emit(conn, event_type, outcome.intent, key)
    if outcome.error:
        return Answer(outcome.error.status, outcome.error.body)
    return Answer(200, outcome.intent)


async def existing_intent(conn: asyncpg.Connection, intent_id: str, *, lock: bool) -> dict[str, Any]:
    intent = await (store.lock_intent if lock else store.get_intent)(conn, intent_id)
    if intent is None:
        raise missing("payment_intent", intent_id, "intent")
    return intent


def _limit(value: Any) -> int:
    if value is None:
        return 10
    if not isinstance(value, str) or not value.isdigit() or not 1 <= int(value) <= 100:
        raise SandboxError(400, "limit must be an integer between 1 and 100.", param="limit")
    return int(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _created_bound(value: Any) -> int | None:
    """`created[gte]` (the only range the reconciler uses); a bare `created` means exactly that second."""
    raw = value.get("gte") if isinstance(value, dict) else value
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.isdigit():
        raise SandboxError(400, "created[gte] must be a Unix timestamp.", param="created")
    return int(raw)
