"""How console routes answer what goes wrong: no session → the sign-in page; a one-time password → the page
to choose one's own; a missing CSRF token → 403; paywarden's errors → a page saying what was wrong, or, for a
form that can be fixed, back to the form's page with the message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute, APIRouter

from server.errors import PaywardenError, for_operator
from webapp.console import rendering, session
from webapp.dependencies import services_of

BACK_FIELD = "back"
FIXABLE = (400, 402, 409, 429, 502, 503)
"""A form refused with one of these goes back to its page with the message: the person can fix it or retry."""
CSRF_MESSAGE = (
    "This form's security token is missing or wrong (it did not come from your console session, or the session "
    "changed). Nothing was done. Go back, reload the page and try again."
)


class ConsoleRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except session.SignInRequired as needed:
                return RedirectResponse(f"/console/sign-in?next={quote(needed.next_path)}", 303, rendering.NO_STORE)
            except session.PasswordChoiceRequired:
                return RedirectResponse(session.PASSWORD_PAGE, 303, rendering.NO_STORE)
            except session.CsrfRefused:
                return await error_page(request, 403, CSRF_MESSAGE)
            except PaywardenError as error:
                return await refused(request, error)

        return answer


async def refused(request: Request, error: PaywardenError) -> Response:
    if request.method == "POST" and error.status in FIXABLE:
        form = await request.form()
        back = form.get(BACK_FIELD)
        if isinstance(back, str) and back:
            to = rendering.local_path(back)
            return await rendering.redirect(request, services_of(request), to, for_operator(error), "error")
    return await error_page(request, error.status, for_operator(error))


async def error_page(request: Request, status: int, message: str) -> Response:
    return await rendering.page(request, services_of(request), "error.html", status, status=status, message=message)


def console_router() -> APIRouter:
    """A console page module's routes: under /console, answering as above, outside /openapi.json (the API's)."""
    return APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
