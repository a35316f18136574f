"""Request bodies of /v1, refused before any route sees them: not JSON (415) or too large (413).

ASGI middleware, because FastAPI reads a body whole before a route's dependencies run: this reads at
most MAX_BODY_BYTES (refusing a declared larger body unread) and hands the route what it read.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import PayloadTooLarge, PaywardenError, UnsupportedMediaType
from webapp.api.problems import problem_response

MAX_BODY_BYTES = 64 * 1024
API_PREFIX = "/v1/"
NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOO_LARGE = f"Request bodies are limited to {MAX_BODY_BYTES} bytes."
NOT_JSON = "Request bodies must be JSON: send Content-Type: application/json."


class NoFields(BaseModel):
    """No fields: an empty body, `{}`, or none at all (an operation that takes none refuses any, as every
    other refuses unknown fields)."""

    model_config = ConfigDict(extra="forbid")


class BodyGuard:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _guarded(scope):
            await self._app(scope, receive, send)
            return
        try:
            body = await _read_body(scope, receive)
        except PaywardenError as refused:
            await problem_response(refused)(scope, receive, send)
            return
        await self._app(scope, _replaying(body, receive), send)


def _guarded(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] in NO_BODY_METHODS:
        return False
    path, root = scope["path"], scope.get("root_path", "")
    return (path[len(root) :] if root and path.startswith(root) else path).startswith(API_PREFIX)


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge(TOO_LARGE)
    has_body = (declared.isdigit() and int(declared) > 0) or "transfer-encoding" in headers
    if has_body and not _is_json(headers.get("content-type", "")):
        raise UnsupportedMediaType(NOT_JSON)
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(TOO_LARGE)
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    if body and not _is_json(headers.get("content-type", "")):
        raise UnsupportedMediaType(NOT_JSON)
    return body


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def _replaying(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
