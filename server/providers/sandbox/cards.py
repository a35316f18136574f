"""Stripe's test payment methods: which card each stands for, and what it does when charged.

`pm_card_visa` succeeds; the decline cards fail; `pm_card_authenticationRequired` needs the person on
every payment (off-session it is declined with `authentication_required`); `pm_card_chargeCustomerFail`
can be saved to a customer but every charge of it fails. A card saved to a customer becomes a
PaymentMethod of its own (pm_…) that behaves as the test card it was saved from.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from server.providers.sandbox.objects import (
    TEST_CARD_EXPIRY,
    TEST_CARDS,
    card_template,
    fill,
    payment_method_template,
)

SUCCEEDS = frozenset({"pm_card_visa", "pm_card_mastercard", "pm_card_amex", "pm_card_createDispute"})
DECLINES: dict[str, tuple[str, str]] = {
    "pm_card_chargeDeclined": ("generic_decline", "Your card was declined."),
    "pm_card_visa_chargeDeclined": ("generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": ("insufficient_funds", "Your card has insufficient funds."),
    "pm_card_visa_chargeDeclinedInsufficientFunds": ("insufficient_funds", "Your card has insufficient funds."),
    "pm_card_chargeCustomerFail": ("generic_decline", "Your card was declined."),
}
NEEDS_AUTHENTICATION = frozenset({"pm_card_authenticationRequired", "pm_card_threeDSecure2Required"})
KNOWN = SUCCEEDS | NEEDS_AUTHENTICATION | frozenset(DECLINES)
UNATTACHABLE = frozenset(DECLINES) - {"pm_card_chargeCustomerFail"}
"""Stripe's decline cards cannot be saved to a customer; chargeCustomerFail can (its charges fail later)."""
SAVE_ON_HOSTED_PAGE = ("pm_card_visa", "pm_card_authenticationRequired", "pm_card_chargeCustomerFail")
"""The cards a person may choose on the sandbox's page for saving a card."""

_OTHER_BRANDS = {
    "pm_card_mastercard": {"brand": "mastercard", "last4": "4444"},
    "pm_card_amex": {"brand": "amex", "last4": "0005"},
    "pm_card_visa_chargeDeclined": TEST_CARDS["pm_card_chargeDeclined"],
    "pm_card_visa_chargeDeclinedInsufficientFunds": TEST_CARDS["pm_card_chargeDeclinedInsufficientFunds"],
}


@dataclass(frozen=True)
class ChosenCard:
    payment_method: str
    """What the payment intent shows as its payment_method: the test id, or a saved card's pm_…."""
    test_card: str
    """The test card it behaves as (a key of KNOWN)."""
    customer: str | None = None
    """The customer a saved card belongs to."""


def describe(test_card: str) -> str:
    """For people: 'Visa ending 4242'."""
    details = _details(test_card)
    return f"{details['brand'].title()} ending {details['last4']}"


def new_payment_method(test_card: str, customer: str | None) -> dict[str, Any]:
    """A PaymentMethod of its own for a test card (what saving the card to a customer makes)."""
    details = _details(test_card)
    month, year = TEST_CARD_EXPIRY
    card = card_template(
        brand=details["brand"],
        last4=details["last4"],
        exp_month=month,
        exp_year=year,
        funding=details.get("funding", "credit"),
        country=details.get("country", "US"),
    )
    return fill(
        payment_method_template("pm_" + secrets.token_hex(12)),
        card=card,
        created=int(time.time()),
        customer=customer,
        allow_redisplay="unspecified",
    )


def _details(test_card: str) -> dict[str, Any]:
    return _OTHER_BRANDS.get(test_card) or TEST_CARDS[test_card]
