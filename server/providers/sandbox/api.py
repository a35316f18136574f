"""The sandbox's HTTP face: Stripe's payment-intent endpoints and the hosted payment page, as an ASGI
application that the HTTP adapter mounts at /sandbox."""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from server.money import format_amount
from server.providers.sandbox import intents, store
from server.providers.sandbox.intents import Outcome, SandboxError
from server.providers.stripe_amounts import from_stripe

MAX_FORM_BYTES = 64 * 1024
_BRACKETS = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


@dataclass(frozen=True)
class SandboxState:
    pool: asyncpg.Pool
    base_url: str
    """The sandbox's own address, e.g. http://127.0.0.1:8000/sandbox."""
    api_key: str
    """The secret key its API answers (per database: `paywarden sandbox key`)."""
    wake_deliverer: Callable[[], None]


router = APIRouter(tags=["sandbox"])
Operation = Callable[[asyncpg.Connection], Awaitable[Outcome]]


def build_app(state: SandboxState) -> FastAPI:
    """The sandbox as an application of its own, to be mounted at /sandbox."""
    app = FastAPI(title="paywarden sandbox provider", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = state
    app.include_router(router)
    app.add_exception_handler(SandboxError, _stripe_shaped_error)
    for unavailable in DATABASE_GONE:
        app.add_exception_handler(unavailable, _database_gone)
    return app


DATABASE_GONE = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError)


async def _stripe_shaped_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, SandboxError)
    return JSONResponse(error.body, error.status)


async def _database_gone(request: Request, error: Exception) -> JSONResponse:
    """Stripe answers 5xx when it has trouble of its own; clients retry those."""
    unavailable = SandboxError(503, "The sandbox's database is not answering; retry shortly.", type_="api_error")
    return JSONResponse(unavailable.body, unavailable.status)


@router.post("/v1/payment_intents")
async def create_payment_intent(request: Request) -> JSONResponse:
    params = await _form(request)
    state = _state(request)
    return await _run(request, params, lambda conn: _create(state, params))


@router.get("/v1/payment_intents/{intent_id}")
async def retrieve_payment_intent(intent_id: str, request: Request) -> JSONResponse:
    _authenticate(request)
    async with _state(request).pool.acquire() as conn:
        return JSONResponse(await _existing(conn, intent_id, lock=False))


@router.post("/v1/payment_intents/{intent_id}/confirm")
async def confirm_payment_intent(intent_id: str, request: Request) -> JSONResponse:
    params = await _form(request)
    base = _state(request).base_url

    async def operation(conn: asyncpg.Connection) -> Outcome:
        intent = await _existing(conn, intent_id, lock=True)
        method = intents._payment_method(params.get("payment_method")) or intent.get("payment_method")
        if not method:
            raise SandboxError(400, "You must provide a payment_method to confirm.", param="payment_method")
        return intents.confirm(intent, method, base)

    return await _run(request, params, operation)


@router.post("/v1/payment_intents/{intent_id}/cancel")
async def cancel_payment_intent(intent_id: str, request: Request) -> JSONResponse:
    params = await _form(request)

    async def operation(conn: asyncpg.Connection) -> Outcome:
        intent = await _existing(conn, intent_id, lock=True)
        return intents.cancel(intent, params.get("cancellation_reason"))

    return await _run(request, params, operation)


@router.post("/v1/refunds")
async def create_refund(request: Request) -> JSONResponse:
    params = await _form(request)

    async def operation(conn: asyncpg.Connection) -> tuple[dict[str, Any], list]:
        intent_id = params.get("payment_intent")
        if not isinstance(intent_id, str):
            raise SandboxError(400, "Missing required param: payment_intent.", param="payment_intent")
        intent = await _existing(conn, intent_id, lock=True)
        refund, events = intents.new_refund(intent, params, await store.refunded_total(conn, intent_id))
        await store.insert_refund(conn, refund)
        return refund, events

    return await _run_raw(request, params, operation)


@router.get("/v1/refunds/{refund_id}")
async def retrieve_refund(refund_id: str, request: Request) -> JSONResponse:
    _authenticate(request)
    async with _state(request).pool.acquire() as conn:
        refund = await store.get_refund(conn, refund_id)
    if refund is None:
        raise SandboxError(404, f"No such refund: '{refund_id[:64]}'", code="resource_missing", param="id")
    return JSONResponse(refund)


@router.get("/v1/events")
async def list_events(request: Request) -> JSONResponse:
    """Stripe's event list: newest first, paged by `starting_after` (older) or `ending_before` (newer)."""
    _authenticate(request)
    params: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        _assign(params, name, value)
    query = store.EventQuery(
        limit=_limit(params.get("limit")),
        starting_after=_text(params.get("starting_after")),
        ending_before=_text(params.get("ending_before")),
        created_gte=_created_bound(params.get("created")),
    )
    async with _state(request).pool.acquire() as conn:
        page = await store.list_events(conn, query)
    if page is None:
        cursor = query.starting_after or query.ending_before or ""
        raise SandboxError(404, f"No such event: '{cursor[:64]}'", code="resource_missing", param="starting_after")
    events, has_more = page
    return JSONResponse({"object": "list", "url": "/v1/events", "has_more": has_more, "data": events})


@router.get("/")
async def about() -> JSONResponse:
    return JSONResponse(
        {
            "sandbox": "paywarden's local, Stripe-compatible payment provider; no real money moves",
            "api": "/sandbox/v1/payment_intents (Authorization: Bearer sk_test_…)",
            "hosted_payment_page": "/sandbox/pay/{payment_intent_id}",
        }
    )


@router.get("/pay/{intent_id}", response_class=HTMLResponse)
async def hosted_payment_page(intent_id: str, request: Request) -> HTMLResponse:
    async with _state(request).pool.acquire() as conn:
        intent = await store.get_intent(conn, intent_id)
    if intent is None:
        return _page("Payment not found", "<p>There is no payment at this address.</p>", 404)
    return _page("Confirm payment", _payment_form(intent))


@router.post("/pay/{intent_id}/{decision}", response_class=HTMLResponse)
async def hosted_payment_decision(intent_id: str, decision: str, request: Request) -> HTMLResponse:
    act = {"pay": intents.pay_on_hosted_page, "decline": intents.decline_on_hosted_page}.get(decision)
    if act is None:
        return _page("Unknown action", "<p>Use the Pay or Decline button.</p>", 404)
    state = _state(request)
    try:
        async with state.pool.acquire() as conn, conn.transaction():
            intent = await _existing(conn, intent_id, lock=True)
            outcome = act(intent)
            await _persist(conn, outcome, None)
    except SandboxError as error:
        return _page("Nothing to do", f"<p>{html.escape(error.body['error']['message'])}</p>", error.status)
    state.wake_deliverer()
    done = "Payment succeeded" if outcome.intent["status"] == "succeeded" else "Payment declined"
    return _page(done, f"<p>{done}. You can close this window and return to the conversation.</p>")


async def _create(state: SandboxState, params: dict[str, Any]) -> Outcome:
    return intents.new_intent(params, state.base_url)


async def _run(
    request: Request, params: dict[str, Any], operation: Operation, *, persist_intent: bool = True
) -> JSONResponse:
    """Authenticate, honour Stripe's Idempotency-Key, run the operation and persist it in one transaction."""
    state = _state(request)
    api_key = _authenticate(request)
    key = request.headers.get("Idempotency-Key")
    async with state.pool.acquire() as conn, conn.transaction():
        if key:
            replay = await _replay(conn, api_key, key, params)
            if replay is not None:
                return replay
        status, body = await _execute(conn, operation, key, persist_intent)
        if key:
            await store.save_idempotent_response(conn, api_key, key, status, body)
    state.wake_deliverer()
    return JSONResponse(body, status)


async def _run_raw(request: Request, params: dict[str, Any], operation) -> JSONResponse:
    """Like _run, for operations that build their own object and events (refunds)."""

    async def as_outcome(conn: asyncpg.Connection) -> Outcome:
        body, events = await operation(conn)
        for event_type, obj in events:
            await store.insert_event(conn, intents.event(event_type, obj, request.headers.get("Idempotency-Key")))
        return Outcome(body, [], None)

    return await _run(request, params, as_outcome, persist_intent=False)


async def _execute(
    conn: asyncpg.Connection, operation: Operation, key: str | None, persist_intent: bool
) -> tuple[int, dict[str, Any]]:
    try:
        outcome = await operation(conn)
    except SandboxError as error:
        return error.status, error.body
    if persist_intent:
        await _persist(conn, outcome, key)
    if outcome.error:
        return outcome.error.status, outcome.error.body
    return 200, outcome.intent


async def _persist(conn: asyncpg.Connection, outcome: Outcome, key: str | None) -> None:
    exists = await store.get_intent(conn, outcome.intent["id"])
    if exists is None:
        await store.insert_intent(conn, outcome.intent)
    else:
        await store.save_intent(conn, outcome.intent)
    for event_type in outcome.event_types:
        await store.insert_event(conn, intents.event(event_type, outcome.intent, key))


async def _replay(conn: asyncpg.Connection, api_key: str, key: str, params: dict[str, Any]) -> JSONResponse | None:
    request_hash = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    earlier = await store.claim_idempotency_key(conn, api_key, key, request_hash)
    if earlier is None:
        return None
    if earlier["request_hash"] != request_hash:
        raise SandboxError(
            400,
            "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            type_="idempotency_error",
        )
    return JSONResponse(earlier["response"], earlier["status_code"], headers={"Idempotent-Replayed": "true"})


async def _existing(conn: asyncpg.Connection, intent_id: str, *, lock: bool) -> dict[str, Any]:
    intent = await (store.lock_intent if lock else store.get_intent)(conn, intent_id)
    if intent is None:
        raise SandboxError(404, f"No such payment_intent: '{intent_id[:64]}'", code="resource_missing", param="intent")
    return intent


def _authenticate(request: Request) -> str:
    """The sandbox's API holds every tenant's payments, so it answers only paywarden itself: callers on
    this machine, addressing it by a local name (no DNS rebinding), with the sandbox's key. The hosted
    payment page stays open to anyone holding an intent's unguessable link, as a checkout page is."""
    if not _is_loopback(request.client.host if request.client else None) or _came_through_a_proxy(request):
        raise SandboxError(403, "The sandbox API answers only callers on this machine.")
    if urlsplit(f"//{request.headers.get('host', '')}").hostname not in _local_names(request):
        raise SandboxError(403, "The sandbox API answers only requests addressed to this machine.")
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    expected = _state(request).api_key
    if scheme.lower() != "bearer" or not hmac.compare_digest(key.encode(), expected.encode()):
        raise SandboxError(401, "Invalid API key for the sandbox.", type_="invalid_request_error")
    return key


FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")


def _came_through_a_proxy(request: Request) -> bool:
    """A proxy on this machine makes every caller look local: a request it forwarded is not trusted as local
    (and the sandbox's secret key is needed anyway)."""
    return any(name in request.headers for name in FORWARDING_HEADERS)


def _is_loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return (mapped or ip).is_loopback


def _local_names(request: Request) -> set[str | None]:
    return {"127.0.0.1", "localhost", "::1", urlsplit(_state(request).base_url).hostname}


async def _form(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise SandboxError(413, f"Request body larger than {MAX_FORM_BYTES} bytes.")
    params: dict[str, Any] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        _assign(params, name, value)
    return params


def _assign(params: dict[str, Any], name: str, value: str) -> None:
    """`metadata[payment_id]=x` → params["metadata"]["payment_id"] = "x" (Stripe's form encoding)."""
    match = _BRACKETS.match(name)
    if not match:
        return
    keys = [match[1], *re.findall(r"\[([^\[\]]*)\]", match[2])]
    target = params
    for part in keys[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            return
    target[keys[-1]] = value


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


def _state(request: Request) -> SandboxState:
    state = request.app.state.sandbox
    assert isinstance(state, SandboxState)
    return state


def _payment_form(intent: dict[str, Any]) -> str:
    currency = intent["currency"].upper()
    amount = html.escape(format_amount(from_stripe(intent["amount"], currency), currency))
    description = html.escape(intent.get("description") or "")
    if intent["status"] != "requires_action":
        state = {"succeeded": "has already been paid", "canceled": "was canceled"}.get(
            intent["status"], "is not waiting for payment"
        )
        return f"<p>{amount} — {description}</p><p>This payment {state}.</p>"
    base = f"/sandbox/pay/{html.escape(intent['id'])}"
    return (
        f"<p class=amount>{amount}</p><p>{description}</p>"
        f"<form method=post action='{base}/pay'><button id=pay type=submit>Pay {amount}</button></form>"
        f"<form method=post action='{base}/decline'><button id=decline type=submit>Decline</button></form>"
        "<p class=note>paywarden sandbox: no real money moves.</p>"
    )


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}"
        ".amount{font-size:2rem;font-weight:600}button{font-size:1.1rem;padding:.6rem 1.4rem;margin:.3rem 0}"
        ".note{color:#666;font-size:.9rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status)
