"""Money is integers in minor units with ISO 4217 exponents."""

from __future__ import annotations

import pytest

from server.catalog import load_catalog
from server.config import DEFAULT_CATALOG
from server.errors import InvalidRequest, UnknownCurrency
from server.money import EXPONENTS, check_amount, format_amount, normalize_currency


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (2000, "USD", "20.00 USD"),
        (5, "EUR", "0.05 EUR"),
        (500, "JPY", "500 JPY"),
        (1234, "KWD", "1.234 KWD"),
        (1, "CLF", "0.0001 CLF"),
        (-250, "USD", "-2.50 USD"),
    ],
)
def test_format_amount_uses_the_currency_exponent(amount: int, currency: str, shown: str) -> None:
    assert format_amount(amount, currency) == shown


def test_exponents_of_well_known_currencies() -> None:
    assert (EXPONENTS["USD"], EXPONENTS["JPY"], EXPONENTS["KWD"], EXPONENTS["KRW"], EXPONENTS["BHD"]) == (2, 0, 3, 0, 3)


def test_currency_codes_are_normalised_and_checked() -> None:
    assert normalize_currency(" usd ") == "USD"
    with pytest.raises(UnknownCurrency, match="'XYZ'"):
        normalize_currency("XYZ")


@pytest.mark.parametrize("bad", [0, -1, 100_000_000, 2.5, True, "100"])
def test_check_amount_refuses_what_is_not_a_positive_whole_amount(bad) -> None:
    with pytest.raises(InvalidRequest):
        check_amount(bad)


def test_the_shipped_catalog_loads_and_sells_pro_monthly() -> None:
    catalog = load_catalog(DEFAULT_CATALOG)
    product = catalog.get("pro_monthly")
    assert product.grants_feature("pro") and product.grants[0].days == 30
    assert isinstance(product.amount_minor, int)
