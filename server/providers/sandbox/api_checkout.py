"""The sandbox's Checkout Sessions: Stripe's API (create, retrieve, expire) and the hosted page behind
each session's url, where the person pays or saves a card."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import stripe.params.checkout as checkout_params
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from server.providers.sandbox import api_customers, checkout, pages, store
from server.providers.sandbox.cards import ChosenCard
from server.providers.sandbox.checkout import Change
from server.providers.sandbox.events import emit
from server.providers.sandbox.requests import (
    Answer,
    SandboxError,
    SandboxState,
    check_known,
    form,
    items,
    missing,
    read,
    run,
    state_of,
    text,
)

router = APIRouter(tags=["sandbox"])
EXPIRY_BATCH = 50
_NESTED = {
    "payment_intent_data": checkout_params.SessionCreateParamsPaymentIntentData,
    "setup_intent_data": checkout_params.SessionCreateParamsSetupIntentData,
}


@router.post("/v1/checkout/sessions")
async def create_session(request: Request) -> JSONResponse:
    params = await form(request, checkout_params.SessionCreateParams)
    _check_nested(params)
    base = state_of(request).base_url

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        await api_customers.existing_customer_id(conn, text(params, "customer", 255))
        session, private = checkout.new_session(params, base)
        if session["mode"] == "setup":
            setup_intent = checkout.new_setup_intent(session, private)
            session["setup_intent"] = setup_intent["id"]
            await store.put(conn, setup_intent)
            await emit(conn, "setup_intent.created", setup_intent, key)
        await store.put(conn, session, private)
        return Answer(200, session)

    return await run(request, params, operation)


@router.get("/v1/checkout/sessions/{session_id}")
async def retrieve_session(session_id: str, request: Request) -> JSONResponse:
    return await read(request, lambda conn: _existing_session(conn, session_id))


@router.post("/v1/checkout/sessions/{session_id}/expire")
async def expire_session(session_id: str, request: Request) -> JSONResponse:
    params = await form(request, checkout_params.SessionExpireParams)

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        return Answer(200, await _expire(conn, session_id, key))

    return await run(request, params, operation)


@router.get("/checkout/{session_id}", response_class=HTMLResponse)
async def checkout_page(session_id: str, request: Request) -> HTMLResponse:
    async with state_of(request).pool.acquire() as conn:
        found = await store.get_with_private(conn, "checkout.session", session_id)
    if found is None:
        return pages.page("Checkout not found", "<p>There is no checkout at this address.</p>", 404)
    session, private = found
    return pages.page(_title(session), pages.checkout_form(session, private))


@router.post("/checkout/{session_id}/pay/{test_card}", response_class=HTMLResponse)
async def pay_on_checkout_page(session_id: str, test_card: str, request: Request) -> Response:
    state = state_of(request)

    async def act(conn: asyncpg.Connection, session: dict[str, Any], private: dict[str, Any]) -> Change:
        intent = await store.lock_intent(conn, session["payment_intent"]) if session["payment_intent"] else None
        card = ChosenCard(payment_method=test_card, test_card=test_card)
        if test_card not in ("pm_card_visa", "pm_card_chargeDeclined"):
            raise SandboxError(400, "Choose one of the cards offered on this page.")
        return checkout.pay(session, private, intent, card, state.base_url)

    return await _on_page(request, session_id, act)


@router.post("/checkout/{session_id}/save/{test_card}", response_class=HTMLResponse)
async def save_card_on_checkout_page(session_id: str, test_card: str, request: Request) -> Response:
    async def act(conn: asyncpg.Connection, session: dict[str, Any], private: dict[str, Any]) -> Change:
        found = await store.lock_object(conn, "setup_intent", session["setup_intent"] or "")
        if found is None:
            raise SandboxError(400, "This checkout is not saving a card.")
        return checkout.save_card(session, found[0], test_card)

    return await _on_page(request, session_id, act)


async def _on_page(request: Request, session_id: str, act) -> Response:
    """Apply what the person did; then back to the merchant (success_url) when the checkout is complete,
    or the page again with what went wrong."""
    state = state_of(request)
    try:
        async with state.pool.acquire() as conn, conn.transaction():
            found = await store.lock_object(conn, "checkout.session", session_id)
            if found is None:
                raise SandboxError(404, "There is no checkout at this address.")
            change = await act(conn, *found)
            await _apply(conn, change, None)
    except SandboxError as error:
        return pages.page("Nothing to do", f"<p>{error.body['error']['message']}</p>", error.status)
    state.wake_deliverer()
    session = change.objects[-1]
    if session["status"] == "complete":
        if session.get("success_url"):
            return RedirectResponse(session["success_url"], 303)
        return pages.done("Done", "Card saved." if session["mode"] == "setup" else "Payment succeeded.")
    return pages.page(_title(session), pages.checkout_form(session, found[1], change.problem))


async def expire_due_sessions(state: SandboxState) -> int:
    """Expire the open sessions whose time has run out (what Stripe does by itself); how many."""
    async with state.pool.acquire() as conn, conn.transaction():
        due = await store.due_sessions(conn, int(time.time()), EXPIRY_BATCH)
        for session_id in due:
            await _expire(conn, session_id, None)
        await store.forget_old_requests(conn)
    if due:
        state.wake_deliverer()
    return len(due)


async def _expire(conn: asyncpg.Connection, session_id: str, key: str | None) -> dict[str, Any]:
    session = await _existing_session(conn, session_id, lock=True)
    intent = await store.lock_intent(conn, session["payment_intent"]) if session["payment_intent"] else None
    setup = await store.lock_object(conn, "setup_intent", session["setup_intent"]) if session["setup_intent"] else None
    change = checkout.expire(session, intent, setup[0] if setup else None)
    await _apply(conn, change, key)
    return change.objects[-1]


async def _apply(conn: asyncpg.Connection, change: Change, key: str | None) -> None:
    for obj in change.objects:
        await store.put(conn, obj, change.private.get(obj["id"]))
    for event_type, obj in change.events:
        await emit(conn, event_type, obj, key)


async def _existing_session(conn: asyncpg.Connection, session_id: str, *, lock: bool = False) -> dict[str, Any]:
    found = await (store.lock_object if lock else store.get_with_private)(conn, "checkout.session", session_id)
    if found is None:
        raise missing("checkout.session", session_id)
    return found[0]


def _check_nested(params: dict[str, Any]) -> None:
    for name, accepted in _NESTED.items():
        if isinstance(params.get(name), dict):
            check_known(params[name], accepted, name)
    for index, line in enumerate(items(params.get("line_items"))):
        if isinstance(line, dict):
            check_known(line, checkout_params.SessionCreateParamsLineItem, f"line_items[{index}]")
            price = line.get("price_data")
            if isinstance(price, dict):
                check_known(price, checkout_params.SessionCreateParamsLineItemPriceData, "price_data")


def _title(session: dict[str, Any]) -> str:
    return "Save a card" if session["mode"] == "setup" else "Checkout"
