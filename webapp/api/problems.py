"""RFC 9457 problem details: how every /v1 error is answered, and how each route declares them in OpenAPI.

A problem is `{type, title, status, detail, code, param?, errors?}`: `code` is the error class's stable
code (server/errors.py), `title` its default message, `detail` the message an agent would get, and
`param` the parameter at fault. Extra members carry what a client acts on (`retry_after_seconds`).
"""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from server.errors import (
    ChargeInProgress,
    InvalidParameter,
    MalformedJson,
    PaywardenError,
    RateLimited,
    Unauthenticated,
    UnknownParameter,
)
from server.fields import HINTS, problem_words

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:paywarden:problem:"
HEADER_PARAMS = {"idempotency_key": "Idempotency-Key"}
"""What a service calls an argument that travels in a header here."""
HTTP_HINTS = {**HINTS, "Idempotency-Key": "a key you choose per operation (e.g. a UUID), 1 to 255 characters"}


class ParamError(BaseModel):
    param: str
    detail: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (application/problem+json)."""

    type: str = Field(description="urn:paywarden:problem:<code>.")
    title: str = Field(description="What kind of problem: the same for every problem of this code.")
    status: int
    detail: str = Field(description="What was wrong with this request and how to fix it.")
    code: str = Field(description="Stable and machine-readable, e.g. spend_limit_exceeded.")
    param: str | None = Field(default=None, description="The parameter at fault, where there is one.")
    errors: list[ParamError] | None = Field(default=None, description="Every parameter at fault (422).")
    retry_after_seconds: int | None = Field(default=None, description="429: when to try again.")


class ProblemResponse(JSONResponse):
    media_type = MEDIA_TYPE


def problem_response(error: PaywardenError, errors: list[ParamError] | None = None) -> ProblemResponse:
    problem = Problem(
        type=TYPE_PREFIX + error.code,
        title=error.title() or error.message,
        status=error.status,
        detail=error.message,
        code=error.code,
        param=HEADER_PARAMS.get(error.param or "", error.param),
        errors=errors,
        retry_after_seconds=error.retry_after_seconds if isinstance(error, RateLimited) else None,
    )
    return ProblemResponse(problem.model_dump(exclude_none=True), error.status, headers=_headers(error))


def _headers(error: PaywardenError) -> dict[str, str] | None:
    if isinstance(error, RateLimited):
        return {"Retry-After": str(error.retry_after_seconds)}
    if isinstance(error, Unauthenticated):
        return {"WWW-Authenticate": 'Bearer realm="paywarden"'}
    if isinstance(error, ChargeInProgress):
        return {"Retry-After": "1"}
    if error.status == 503:
        return {"Retry-After": "5"}
    return None


def validation_problem(error: RequestValidationError) -> ProblemResponse:
    """FastAPI's and pydantic's refusals, as one problem naming each parameter at fault."""
    details = list(error.errors())
    if any(detail["type"] == "json_invalid" for detail in details):
        return problem_response(MalformedJson("The request body is not valid JSON; send a JSON object."))
    found = [_param_error(detail) for detail in details]
    unknown = all(detail["type"] == "extra_forbidden" for detail in details)
    kind = UnknownParameter if unknown else InvalidParameter
    message = "; ".join(item.detail for item in found) + "."
    return problem_response(kind(message, param=found[0].param if found else None), found)


def _param_error(detail: dict[str, Any]) -> ParamError:
    where, *path = detail["loc"] or ("body",)
    param = ".".join(str(part) for part in path) or ("body" if where == "body" else where)
    if detail["type"] == "extra_forbidden":
        return ParamError(param=param, detail=f"{param}: this operation does not take {param}")
    if where == "body" and not path:
        return ParamError(param="body", detail="body: send a JSON object with this operation's fields")
    said = f"{param}: required" if detail["type"] == "missing" else f"{param}: {problem_words(detail)}"
    if "input" in detail and detail["type"] != "missing":
        said += f" (got {_short(detail['input'])})"
    hint = HTTP_HINTS.get(param)
    return ParamError(param=param, detail=said + (f"; expected {hint}" if hint else ""))


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for these error statuses, each a problem+json body (for a route's `responses=`)."""
    return {
        status: {"description": ERROR_MEANINGS[status], "content": {MEDIA_TYPE: {"schema": PROBLEM_SCHEMA_REF}}}
        | ({"headers": ERROR_HEADERS[status]} if status in ERROR_HEADERS else {})
        for status in statuses
    }


PROBLEM_SCHEMA_REF = {"$ref": "#/components/schemas/Problem"}
ERROR_MEANINGS = {
    400: "The request is not valid (an argument breaks a rule, or the body is not JSON).",
    401: "No API key, or not an active one.",
    402: "Not enough credits.",
    403: "The key lacks the scope, or a spend limit forbids the charge.",
    404: "Not found (another tenant's ids are answered the same way).",
    409: "The Idempotency-Key was used for a different request, the first request with it is still running, "
    "or the resource is not in a state that allows this.",
    413: "The body is too large.",
    415: "The body is not application/json.",
    422: "A parameter or body field is missing, has the wrong shape, or is not one this operation takes.",
    429: "Too many requests with this key this minute.",
    500: "paywarden failed unexpectedly.",
    502: "The payment provider refused.",
    503: "The database or the payment provider is not answering; retry (with the same Idempotency-Key).",
}
ERROR_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer."}},
    409: {"Retry-After": {"schema": {"type": "string"}, "description": "When the request is still in progress."}},
    429: {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds until the key may call again."}},
    503: {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait before retrying."}},
}
