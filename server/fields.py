"""The shape of every argument a caller sends, whatever the adapter: identifiers, amounts, currencies,
quantities. Their constraints are the MCP tools' input schemas and the HTTP API's request schemas, so
both refuse the same values; HINTS says what a valid value looks like, for both adapters' messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from server.errors import InvalidRequest
from server.money import MAX_AMOUNT_MINOR
from server.text import CUSTOMER_ID_PATTERN, IDENTIFIER_PATTERN, TEXT_PATTERN

MAX_QUANTITY = 10**12
MAX_PAGE_SIZE = 100
MAX_TTL_SECONDS = 86_400
MAX_LISTING = 10_000
"""The most rows one listing (`--limit`) shows."""

_NO_CONTROL = IDENTIFIER_PATTERN
_TEXT = TEXT_PATTERN  # free text: tabs and line breaks allowed
_Identifier = StringConstraints(strip_whitespace=True, min_length=1, max_length=255, pattern=_NO_CONTROL)

CustomerId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255, pattern=CUSTOMER_ID_PATTERN),
    Field(description="Your own stable id for the customer being charged (e.g. 'user_42'); no '/'."),
]
IdempotencyKey = Annotated[
    str,
    _Identifier,
    Field(
        description="A key you choose for this one operation (e.g. a UUID). Reuse it when retrying the same "
        "operation: the original result comes back and nothing happens twice."
    ),
]
ProductId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=_NO_CONTROL),
    Field(description="A catalog product id, e.g. 'pro_monthly'. The price comes from the catalog."),
]
Feature = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=_NO_CONTROL),
    Field(description="The feature to check, e.g. 'pro'."),
]
AmountMinor = Annotated[
    int,
    Field(
        strict=True,
        gt=0,
        le=MAX_AMOUNT_MINOR,
        description="Ad-hoc amount in minor units: 2000 = 20.00 USD, 500 = 500 JPY. Integers only.",
    ),
]
Currency = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$"),
    Field(description="ISO 4217 currency code for an ad-hoc amount, e.g. 'USD', 'EUR', 'JPY'."),
]
Description = Annotated[
    str,
    StringConstraints(max_length=1000, pattern=_TEXT),
    Field(description="What the charge is for, shown to the payer."),
]
PaymentMethod = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255, pattern=_NO_CONTROL),
    Field(
        description="'saved' charges the customer's default saved card while the person is away (they save one "
        "with setup_payment_method first). Or a payment method id (with the sandbox: pm_card_visa succeeds, "
        "pm_card_chargeDeclined fails, pm_card_authenticationRequired needs the person). Omit it to get a "
        "payment page link (next_action_url) for the person."
    ),
]
PaymentId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=5, max_length=64, pattern=r"^pay_[A-Za-z0-9]+$"),
    Field(description="paywarden's payment id, as create_charge returned it (pay_…)."),
]
SubscriptionId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=6, max_length=64, pattern=r"^subs_[A-Za-z0-9]+$"),
    Field(description="paywarden's subscription id, as start_subscription returned it (subs_…)."),
]
When = Annotated[
    Literal["period_end", "now"],
    Field(
        description="'period_end' (the default): the new plan starts at the next renewal. 'now': it starts now "
        "and the prorated difference for the rest of the period is charged at once."
    ),
]

Quantity = Annotated[
    int, Field(strict=True, gt=0, le=MAX_QUANTITY, description="How many credits, e.g. 3000 tokens. Integers only.")
]
ReservationId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=5, max_length=64, pattern=r"^rsv_[A-Za-z0-9]+$"),
    Field(description="The reservation_id reserve_credits returned (rsv_…)."),
]


_INVISIBLE_REFUSED = (IDENTIFIER_PATTERN, TEXT_PATTERN)


def problem_words(detail: Mapping[str, Any]) -> str:
    """A validation error's words for the caller. The identifier and text patterns are not shown: each is a
    character class of the very invisible characters it refuses. Other patterns (pay_…, a currency) are."""
    pattern = detail.get("ctx", {}).get("pattern") if detail["type"] == "string_pattern_mismatch" else None
    if pattern == CUSTOMER_ID_PATTERN:
        return (
            "has characters a customer id may not have ('/', control characters, or invisible ones such as bidi "
            "overrides and zero-width spaces)"
        )
    if pattern in _INVISIBLE_REFUSED:
        return (
            "has characters that are not allowed here (control characters, or invisible ones such as bidi "
            "overrides and zero-width spaces)"
        )
    return str(detail["msg"])


HINTS = {
    "amount_minor": "an integer in the currency's minor units, e.g. 1999 for 19.99 USD or 500 for 500 JPY",
    "currency": "a three-letter ISO 4217 code such as USD, EUR or JPY",
    "payment_id": "the pay_… id that create_charge returned",
    "customer_id": "your own id for the customer, 1 to 255 visible characters (no '/', control or invisible "
    "formatting characters)",
    "idempotency_key": "a key you choose per charge (e.g. a UUID), 1 to 255 characters",
    "product_id": "a product id from the catalog, e.g. pro_monthly",
    "feature": "a feature name such as pro",
    "description": "text of at most 1000 characters",
    "payment_method": "'saved', or a payment method id such as pm_card_visa",
    "quantity": "a positive whole number of credits",
    "used_quantity": "a whole number of credits, 0 or more",
    "reservation_id": "the rsv_… id that reserve_credits returned",
    "subscription_id": "the subs_… id that start_subscription returned",
    "when": "'period_end' or 'now'",
}


def check_listing_limit(limit: int) -> int:
    """How many rows a listing may show: 1 to MAX_LISTING."""
    if not 1 <= limit <= MAX_LISTING:
        raise InvalidRequest(f"--limit must be from 1 to {MAX_LISTING}; got {limit}.", param="limit")
    return limit
