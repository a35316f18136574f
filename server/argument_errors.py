"""Argument-schema failures, said the way an agent can act on them (not pydantic's dump)."""

from __future__ import annotations

from pydantic import ValidationError

HINTS = {
    "amount_minor": "an integer in the currency's minor units, e.g. 1999 for 19.99 USD or 500 for 500 JPY",
    "currency": "a three-letter ISO 4217 code such as USD, EUR or JPY",
    "payment_id": "the pay_… id that create_charge returned",
    "customer_id": "your own id for the customer, 1 to 255 characters with no control characters",
    "idempotency_key": "a key you choose per charge (e.g. a UUID), 1 to 255 characters",
    "product_id": "a product id from the catalog, e.g. pro_monthly",
    "feature": "a feature name such as pro",
    "description": "text of at most 1000 characters",
    "payment_method": "a payment method id such as pm_card_visa",
    "quantity": "a positive whole number of credits",
    "used_quantity": "a whole number of credits, 0 or more",
    "reservation_id": "the rsv_… id that reserve_credits returned",
}


def describe(tool: str, error: ValidationError) -> str:
    problems = [_problem(detail) for detail in error.errors(include_url=False)]
    return f"Invalid arguments for {tool}: " + "; ".join(problems) + "."


def _problem(detail: dict) -> str:
    field = ".".join(str(part) for part in detail["loc"]) or "arguments"
    problem = f"{field}: {detail['msg']}"
    if "input" in detail and detail["type"] != "missing":
        problem += f" (got {_short(detail['input'])})"
    hint = HINTS.get(str(detail["loc"][0])) if detail["loc"] else None
    return problem + (f"; expected {hint}" if hint else "")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"
