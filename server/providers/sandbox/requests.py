"""What every sandbox endpoint shares: who may call the API, Stripe's form encoding and parameter names,
Stripe's idempotency, the request log, and errors in Stripe's shape."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import asyncpg
from fastapi import Request
from fastapi.responses import JSONResponse

from server.providers.sandbox import store

MAX_FORM_BYTES = 64 * 1024
_BRACKETS = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
REQUEST_OPTIONS = frozenset(
    {"api_key", "content_type", "headers", "idempotency_key", "max_network_retries", "stripe_account",
     "stripe_context", "stripe_version"}
)  # fmt: skip
"""Keys of the SDK's parameter types that are options of the client, never sent as parameters."""


@dataclass(frozen=True)
class SandboxState:
    pool: asyncpg.Pool
    base_url: str
    """The sandbox's own address, e.g. http://127.0.0.1:8000/sandbox."""
    api_key: str
    """The secret key its API answers (per database: `paywarden sandbox key`)."""
    wake_deliverer: Callable[[], None]


class SandboxError(Exception):
    """An error in Stripe's shape: `{"error": {"type", "code", "message", "param", …}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": type_, "message": message, "code": code, "param": param, **(extra or {})}}


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


Operation = Callable[[asyncpg.Connection, str | None], Awaitable[Answer]]
"""An API call's work, run in the request's transaction with its Idempotency-Key (for the events it emits)."""


def state_of(request: Request) -> SandboxState:
    state = request.app.state.sandbox
    assert isinstance(state, SandboxState)
    return state


async def run(request: Request, params: dict[str, Any], operation: Operation) -> JSONResponse:
    """Authenticate, honour Stripe's Idempotency-Key, run the operation and log it, in one transaction."""
    state = state_of(request)
    api_key = authenticate(request)
    key = request.headers.get("Idempotency-Key")
    async with state.pool.acquire() as conn, conn.transaction():
        replay = await _replay(conn, api_key, key, params) if key else None
        answer = replay or await _answer(conn, operation, key)
        if key and replay is None:
            await store.save_idempotent_response(conn, api_key, key, answer.status, answer.body)
        await _log(conn, request, params, key, answer.status)
    state.wake_deliverer()
    headers = {"Idempotent-Replayed": "true"} if replay else None
    return JSONResponse(answer.body, answer.status, headers=headers)


async def read(request: Request, lookup: Callable[[asyncpg.Connection], Awaitable[dict[str, Any]]]) -> JSONResponse:
    """A GET: authenticate, look the object up (the lookup raises a SandboxError if it is missing), log it."""
    state = state_of(request)
    authenticate(request)
    params = query_params(request)
    async with state.pool.acquire() as conn:
        try:
            answer = Answer(200, await lookup(conn))
        except SandboxError as error:
            answer = Answer(error.status, error.body)
        await _log(conn, request, params, None, answer.status)
    return JSONResponse(answer.body, answer.status)


async def _answer(conn: asyncpg.Connection, operation: Operation, key: str | None) -> Answer:
    try:
        async with conn.transaction():  # a savepoint: a refused request leaves nothing behind
            return await operation(conn, key)
    except SandboxError as error:
        return Answer(error.status, error.body)


async def _replay(conn: asyncpg.Connection, api_key: str, key: str, params: dict[str, Any]) -> Answer | None:
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
    return Answer(earlier["status_code"], earlier["response"])


async def _log(
    conn: asyncpg.Connection, request: Request, params: dict[str, Any], key: str | None, status: int
) -> None:
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    await store.log_request(
        conn, method=request.method, path=path, params=params, idempotency_key=key, status_code=status
    )


def authenticate(request: Request) -> str:
    """The sandbox's API holds every tenant's payments, so it answers only paywarden itself: callers on
    this machine, addressing it by a local name (no DNS rebinding), with the sandbox's key. The hosted
    pages stay open to anyone holding their unguessable link, as a checkout page is."""
    if not _is_loopback(request.client.host if request.client else None) or _came_through_a_proxy(request):
        raise SandboxError(403, "The sandbox API answers only callers on this machine.")
    if urlsplit(f"//{request.headers.get('host', '')}").hostname not in _local_names(request):
        raise SandboxError(403, "The sandbox API answers only requests addressed to this machine.")
    key = _key_sent(request.headers.get("Authorization", ""))
    expected = state_of(request).api_key
    if not hmac.compare_digest(key.encode(), expected.encode()):
        raise SandboxError(401, "Invalid API key for the sandbox.", type_="invalid_request_error")
    return key


def _key_sent(authorization: str) -> str:
    """The key, sent as Stripe takes it: `Bearer KEY`, or HTTP Basic with the key as the user name
    (`curl -u KEY:`); empty when neither."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(credentials, validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return ""


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
    return {"127.0.0.1", "localhost", "::1", urlsplit(state_of(request).base_url).hostname}


async def form(request: Request, accepted: type | None = None) -> dict[str, Any]:
    """The form-encoded body as nested dicts; with `accepted` (the SDK's parameter type for this call),
    a parameter Stripe does not know is refused as Stripe refuses it."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise SandboxError(413, f"Request body larger than {MAX_FORM_BYTES} bytes.")
    params: dict[str, Any] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        _assign(params, name, value)
    if accepted is not None:
        check_known(params, accepted)
    return params


def query_params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in request.query_params.multi_items():
        _assign(params, name, value)
    return params


def check_known(params: dict[str, Any], accepted: type, prefix: str = "") -> None:
    """Stripe answers 400 `parameter_unknown` to a name its API does not have; so does the sandbox."""
    known = (accepted.__required_keys__ | accepted.__optional_keys__) - REQUEST_OPTIONS  # type: ignore[attr-defined]
    unknown = sorted(set(params) - known)
    if unknown:
        name = f"{prefix}[{unknown[0]}]" if prefix else unknown[0]
        raise SandboxError(400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name)


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


def items(value: Any) -> list[Any]:
    """A form-encoded list (`line_items[0][…]`, `expand[0]=…`) in order."""
    if isinstance(value, dict):
        return [value[index] for index in sorted(value, key=lambda index: int(index) if index.isdigit() else 0)]
    return [] if value is None else [value]


def text(params: dict[str, Any], name: str, limit: int = 5000) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise SandboxError(400, f"Invalid {name}: a string of at most {limit} characters.", param=name)
    return value


def metadata(raw: Any) -> dict[str, str]:
    if raw is None or raw == "":
        return {}
    if not isinstance(raw, dict) or len(raw) > 50 or any(len(str(v)) > 500 for v in raw.values()):
        raise SandboxError(400, "Invalid metadata: at most 50 keys of at most 500 characters.", param="metadata")
    return {str(k): str(v) for k, v in raw.items()}


def flag(params: dict[str, Any], name: str) -> bool:
    return params.get(name) in ("true", True)


def missing(kind: str, object_id: str, param: str = "id") -> SandboxError:
    return SandboxError(404, f"No such {kind}: '{object_id[:64]}'", code="resource_missing", param=param)
