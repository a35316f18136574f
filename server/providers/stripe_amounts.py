"""Stripe's amount units, which differ from ISO 4217 for a few currencies.

paywarden keeps every amount in ISO 4217 minor units. Stripe's API wants "the smallest unit" by
its own rules: MGA is zero-decimal at Stripe (ISO: 2), ISK is sent as a two-decimal value
(ISO: 0), and three-decimal currencies must end in 0. Converting here, and refusing what cannot
be converted exactly, keeps a 10.00 MGA charge from becoming 1000 MGA.
"""

from __future__ import annotations

from server.errors import InvalidRequest
from server.money import EXPONENTS, format_amount

STRIPE_EXPONENT_OVERRIDES = {"MGA": 0, "ISK": 2}
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def _shift(currency: str) -> int:
    """How many decimal places Stripe's unit is finer (+) or coarser (-) than the ISO minor unit."""
    iso = EXPONENTS[currency]
    return STRIPE_EXPONENT_OVERRIDES.get(currency, iso) - iso


def check_chargeable(amount_minor: int, currency: str) -> None:
    step = 10 ** max(-_shift(currency), 0) * (10 if currency in THREE_DECIMAL else 1)
    if amount_minor % step:
        raise InvalidRequest(
            f"Stripe cannot charge {format_amount(amount_minor, currency)} exactly: {currency} amounts must be a "
            f"multiple of {step} minor units (e.g. {amount_minor - amount_minor % step} or "
            f"{amount_minor - amount_minor % step + step}).",
            param="amount_minor",
        )


def to_stripe(amount_minor: int, currency: str) -> int:
    check_chargeable(amount_minor, currency)
    shift = _shift(currency)
    return amount_minor * 10**shift if shift >= 0 else amount_minor // 10**-shift


def from_stripe(amount: int, currency: str) -> int:
    shift = _shift(currency)
    return amount // 10**shift if shift >= 0 else amount * 10**-shift
