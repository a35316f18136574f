"""One handler turns paywarden's errors into JSON answers with their status; nothing else leaks out."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from server.errors import PaywardenError


def error_body(error: PaywardenError) -> dict:
    return {"error": {"type": type(error).__name__, "message": error.message}}


async def paywarden_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, PaywardenError)
    headers = {"Retry-After": "5"} if error.status == 503 else None
    return JSONResponse(error_body(error), error.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PaywardenError, paywarden_error)
