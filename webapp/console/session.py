"""The console's HTTP side of signing in: the session cookie, CSRF tokens, and one-shot messages.

- `paywarden_session` carries the session token, signed (itsdangerous, with the server's key); HttpOnly,
  SameSite=Strict, Secure when PAYWARDEN_PUBLIC_URL is https, path /console. The token itself is checked
  against the database on every request (server/operator_sessions.py: idle and absolute expiry).
- CSRF: every form carries the session's token in a hidden `csrf_token` field, and htmx sends it as
  `X-CSRF-Token`; a POST without the right one is refused with 403. The sign-in form, before any session,
  uses a double-submit cookie (`paywarden_signin`) instead.
- `paywarden_flash`: a signed message shown once on the next page (what a redirect after a POST says).
"""

from __future__ import annotations

import json
import secrets
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from itsdangerous import BadSignature, TimestampSigner, URLSafeSerializer

from server import operator_sessions
from server.operators import SignedIn
from server.services import Services
from webapp.dependencies import ServicesDep

SESSION_COOKIE = "paywarden_session"
SIGNIN_COOKIE = "paywarden_signin"
FLASH_COOKIE = "paywarden_flash"
COOKIE_PATH = "/console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
PASSWORD_PAGE = "/console/password"


class SignInRequired(Exception):
    """No live session: the person is sent to the sign-in page, then back to `next_path`."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PasswordChoiceRequired(Exception):
    """Signed in with a one-time password: nothing else until they choose their own."""


class CsrfRefused(Exception):
    """A POST without the right CSRF token (answered 403)."""


async def keys(request: Request, services: Services) -> tuple[TimestampSigner, URLSafeSerializer]:
    """The cookie signer and the flash serializer, made once per app from the server's key."""
    made = getattr(request.app.state, "console_signers", None)
    if made is None:
        key = await operator_sessions.signing_key(services)
        made = (TimestampSigner(key, salt="console-session"), URLSafeSerializer(key, salt="console-flash"))
        request.app.state.console_signers = made
    return made


def set_cookie(response: Response, services: Services, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=services.settings.serves_https,
    )


def clear_cookie(response: Response, services: Services, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, httponly=True, samesite="strict", secure=services.settings.serves_https
    )


async def start(request: Request, response: Response, services: Services, token: str) -> None:
    signer, _ = await keys(request, services)
    max_age = int(operator_sessions.max_seconds(services))
    set_cookie(response, services, SESSION_COOKIE, signer.sign(token).decode(), max_age=max_age)


async def session_token(request: Request, services: Services) -> str | None:
    """The token of the session cookie, if its signature holds and it is not older than a session may be."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    signer, _ = await keys(request, services)
    try:
        return signer.unsign(cookie, max_age=int(operator_sessions.max_seconds(services))).decode()
    except BadSignature:
        return None


async def _operator(request: Request, services: Services) -> SignedIn:
    token = await session_token(request, services)
    signed_in = await operator_sessions.resume(services, token) if token else None
    if signed_in is None or token is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(path)
    request.state.operator = signed_in
    request.state.session_token = token
    return signed_in


async def any_operator(request: Request, services: ServicesDep) -> SignedIn:
    """The signed-in operator, even one who must still choose a password (for that page and sign-out)."""
    return await _operator(request, services)


async def operator(request: Request, services: ServicesDep) -> SignedIn:
    """The signed-in operator, who has chosen their own password."""
    signed_in = await _operator(request, services)
    if signed_in.must_choose_password:
        raise PasswordChoiceRequired()
    return signed_in


async def submitted_token(request: Request) -> str:
    """The CSRF token the request carries: htmx's header, else the form's hidden field."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    form = await request.form()
    value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else ""


async def _checked(request: Request, signed_in: SignedIn) -> SignedIn:
    if not secrets.compare_digest(await submitted_token(request), signed_in.csrf_token):
        raise CsrfRefused()
    return signed_in


async def acting_operator(request: Request, signed_in: Annotated[SignedIn, Depends(operator)]) -> SignedIn:
    """The signed-in operator, on a POST that carries their session's CSRF token (403 otherwise)."""
    return await _checked(request, signed_in)


async def acting_any_operator(request: Request, signed_in: Annotated[SignedIn, Depends(any_operator)]) -> SignedIn:
    return await _checked(request, signed_in)


OperatorDep = Annotated[SignedIn, Depends(operator)]
AnyOperatorDep = Annotated[SignedIn, Depends(any_operator)]
ActingDep = Annotated[SignedIn, Depends(acting_operator)]
ActingAnyDep = Annotated[SignedIn, Depends(acting_any_operator)]


def signin_token(request: Request) -> str:
    """The sign-in form's double-submit token: the cookie's, or a new one (set by `keep_signin_token`)."""
    return request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(32)


def keep_signin_token(response: Response, services: Services, token: str) -> None:
    set_cookie(response, services, SIGNIN_COOKIE, token)


def signin_token_matches(request: Request, submitted: str) -> bool:
    cookie = request.cookies.get(SIGNIN_COOKIE, "")
    return bool(cookie) and secrets.compare_digest(cookie, submitted)


async def flash(request: Request, response: Response, services: Services, text: str, kind: str = "ok") -> None:
    """A message for the next page this browser shows (after a redirect)."""
    _, serializer = await keys(request, services)
    set_cookie(response, services, FLASH_COOKIE, serializer.dumps({"kind": kind, "text": text[:2000]}))


async def take_flash(request: Request, services: Services) -> dict[str, Any] | None:
    cookie = request.cookies.get(FLASH_COOKIE)
    if not cookie:
        return None
    _, serializer = await keys(request, services)
    try:
        message = serializer.loads(cookie)
    except (BadSignature, json.JSONDecodeError):
        return None
    return message if isinstance(message, dict) else None
