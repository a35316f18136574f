"""One handler turns paywarden's errors into JSON answers; nothing else leaks out."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from db.pool import CONNECTION_ERRORS
from server.errors import DatabaseUnavailable, PaywardenError

logger = logging.getLogger(__name__)


def error_body(error: PaywardenError) -> dict:
    return {"error": {"type": type(error).__name__, "message": error.message}}


async def paywarden_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, PaywardenError)
    return JSONResponse(error_body(error), error.status)


async def database_gone(request: Request, error: Exception) -> JSONResponse:
    logger.warning("database unavailable during %s %s", request.method, request.url.path)
    return JSONResponse(error_body(DatabaseUnavailable()), 503)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PaywardenError, paywarden_error)
    for error_type in CONNECTION_ERRORS:
        app.add_exception_handler(error_type, database_gone)
