"""Signing in and out, choosing one's own password, and a platform operator's tenant switcher."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import Response

from server import operator_sessions
from server.errors import InvalidRequest, PaywardenError, SignInRefused, SignInThrottled
from server.services import Services
from webapp.console import rendering, session
from webapp.console.routing import console_router
from webapp.console.session import ActingAnyDep, ActingDep
from webapp.dependencies import ServicesDep

router = console_router()
Field = Annotated[str, Form()]


@router.get("/sign-in")
async def sign_in_page(request: Request, services: ServicesDep, next: str = "") -> Response:
    return await _sign_in_form(request, services, next)


async def _sign_in_form(
    request: Request, services: Services, next_path: str, error: str | None = None, status: int = 200
) -> Response:
    token = session.signin_token(request)
    response = await rendering.page(
        request, services, "sign_in.html", status, signin_token=token, next=rendering.local_path(next_path), error=error
    )
    session.keep_signin_token(response, services, token)
    return response


@router.post("/sign-in")
async def sign_in(
    request: Request, services: ServicesDep, name: Field = "", password: Field = "", signin_token: Field = "",
    next: Field = "",
) -> Response:  # fmt: skip
    if not session.signin_token_matches(request, signin_token):
        return await _sign_in_form(request, services, next, "The sign-in form expired; please sign in again.", 403)
    address = request.client.host if request.client else None
    try:
        started = await operator_sessions.sign_in(services, name, password, address)
    except (SignInRefused, SignInThrottled) as refused:
        return await _sign_in_form(request, services, next, refused.message, refused.status)
    to = rendering.local_path(next)
    if started.signed_in.must_choose_password:
        to = session.PASSWORD_PAGE + rendering.query(next=to)
    response = await rendering.redirect(request, services, to)
    await session.start(request, response, services, started.token)
    session.clear_cookie(response, services, session.SIGNIN_COOKIE)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, services: ServicesDep, operator: ActingAnyDep) -> Response:
    await operator_sessions.sign_out(services, request.state.session_token)
    response = await rendering.redirect(request, services, "/console/sign-in", "You are signed out.")
    session.clear_cookie(response, services, session.SESSION_COOKIE)
    return response


@router.get("/password")
async def password_page(
    request: Request, services: ServicesDep, operator: session.AnyOperatorDep, next: str = ""
) -> Response:
    return await rendering.page(request, services, "password.html", next=rendering.local_path(next))


@router.post("/password")
async def choose_password(
    request: Request, services: ServicesDep, operator: ActingAnyDep, current: Field = "", new: Field = "",
    repeat: Field = "", next: Field = "",
) -> Response:  # fmt: skip
    try:
        if new != repeat:
            raise InvalidRequest("The two new passwords differ; type the same one twice.")
        address = request.client.host if request.client else None
        token = request.state.session_token
        await operator_sessions.choose_password(services, token, operator, current, new, address)
    except PaywardenError as refused:
        page = "password.html"
        return await rendering.page(request, services, page, refused.status, error=refused.message, next=next)
    return await rendering.redirect(request, services, rendering.local_path(next), "Your password is set.")


@router.post("/tenant")
async def view_tenant(
    request: Request, services: ServicesDep, operator: ActingDep, tenant: Field = "", back: Field = ""
) -> Response:
    await operator_sessions.view_tenant(services, request.state.session_token, operator, tenant.strip() or None)
    return await rendering.redirect(request, services, rendering.local_path(back))
