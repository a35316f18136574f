"""The Idempotency-Key header of money-moving POSTs: the same semantics as the tools' idempotency_key.

A repeat with the same key and body gets the original result back, with `Idempotent-Replayed: true`;
the same key with a different body is refused (409 idempotency_key_reused, naming what differs); a
repeat while the first request is still running gets 409 request_in_progress ("retry shortly").
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header, Response

from server.fields import IdempotencyKey

IdempotencyKeyHeader = Annotated[
    IdempotencyKey,
    Header(
        alias="Idempotency-Key",
        description="A key you choose for this one operation (e.g. a UUID). Send the same key when retrying: "
        "the original result comes back and nothing happens twice.",
    ),
]
REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "schema": {"type": "string", "enum": ["true"]},
        "description": "Present when this Idempotency-Key was used before for the same request: this is the "
        "original result, and nothing happened twice.",
    }
}
IDEMPOTENCY_RESPONSES: dict[int | str, dict[str, Any]] = {
    201: {"description": "Done (or, with Idempotent-Replayed, done before).", "headers": REPLAYED_HEADER}
}


def created_or_replayed(response: Response, replayed: bool, *, accepted: bool = False) -> None:
    """201 for a new result (202 when it only waits for someone), the same for a replay, which says so."""
    response.status_code = 202 if accepted else 201
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
