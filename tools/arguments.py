"""Argument types shared by the tools (their constraints, in server/fields.py, become the tools' input
schemas), and how an argument-schema failure is said to an agent (not pydantic's dump)."""

from __future__ import annotations

from pydantic import ValidationError

from server.fields import (
    HINTS,
    AmountMinor,
    Currency,
    CustomerId,
    Description,
    Feature,
    IdempotencyKey,
    PaymentId,
    PaymentMethod,
    ProductId,
    Quantity,
    ReservationId,
    SubscriptionId,
    When,
    problem_words,
)

__all__ = [
    "HINTS",
    "AmountMinor",
    "Currency",
    "CustomerId",
    "Description",
    "Feature",
    "IdempotencyKey",
    "PaymentId",
    "PaymentMethod",
    "ProductId",
    "Quantity",
    "ReservationId",
    "SubscriptionId",
    "When",
    "describe_argument_errors",
]


def describe_argument_errors(tool: str, error: ValidationError) -> str:
    problems = [_problem(detail) for detail in error.errors(include_url=False)]
    return f"Invalid arguments for {tool}: " + "; ".join(problems) + "."


def _problem(detail: dict) -> str:
    field = ".".join(str(part) for part in detail["loc"]) or "arguments"
    problem = f"{field}: {problem_words(detail)}"
    if "input" in detail and detail["type"] != "missing":
        problem += f" (got {_short(detail['input'])})"
    hint = HINTS.get(str(detail["loc"][0])) if detail["loc"] else None
    return problem + (f"; expected {hint}" if hint else "")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"
