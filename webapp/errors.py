"""How errors are answered. Under /v1 every error is RFC 9457 problem+json (webapp/api/problems.py):
paywarden's own errors, request validation, unknown paths and methods, and anything unexpected (a bare
500 problem, never a stack trace). Elsewhere (webhooks in, health, the sandbox) paywarden's errors are
`{"error": {"type", "message"}}` JSON with their status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException

from server.errors import InvalidRequest, MethodNotAllowed, NotFound, PaywardenError
from webapp.api.problems import problem_response, validation_problem
from webapp.api.security import PREFIX


def error_body(error: PaywardenError) -> dict:
    return {"error": {"type": type(error).__name__, "message": error.message}}


def is_api(request: Request) -> bool:
    path, root = request.scope["path"], request.scope.get("root_path", "")
    path = path[len(root) :] if root and path.startswith(root) else path
    return path == PREFIX or path.startswith(PREFIX + "/")


async def paywarden_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, PaywardenError)
    if is_api(request):
        return problem_response(error)
    headers = {"Retry-After": "5"} if error.status == 503 else None
    return JSONResponse(error_body(error), error.status, headers=headers)


async def invalid_request(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    if is_api(request):
        return validation_problem(error)
    return await request_validation_exception_handler(request, error)


async def http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if not is_api(request):
        return await http_exception_handler(request, error)
    if error.status_code == 405:
        return problem_response(MethodNotAllowed())
    if error.status_code == 404:
        return problem_response(NotFound())
    kind = InvalidRequest if 400 <= error.status_code < 500 else PaywardenError
    return problem_response(kind(str(error.detail)))


async def unexpected(request: Request, error: Exception) -> Response:
    """A bug: answered without its traceback (the server logs it, as Starlette re-raises it after this)."""
    if is_api(request):
        return problem_response(PaywardenError())
    return PlainTextResponse("Internal Server Error", 500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PaywardenError, paywarden_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
