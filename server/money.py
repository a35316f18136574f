"""Money as integers in minor units, with ISO 4217 currency exponents. No floats anywhere."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from server.errors import InvalidRequest, UnknownCurrency

# ISO 4217 active codes and their minor-unit exponents; every code not listed here has 2.
_EXPONENT_0 = ("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF").split()
_EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND".split()
_EXPONENT_4 = "CLF UYW".split()
_EXPONENT_2 = (
    "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP "
    "GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK "
    "LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO "
    "NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS "
    "SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST "
    "XCD XCG YER ZAR ZMW ZWG"
).split()

EXPONENTS: dict[str, int] = {
    **dict.fromkeys(_EXPONENT_2, 2),
    **dict.fromkeys(_EXPONENT_0, 0),
    **dict.fromkeys(_EXPONENT_3, 3),
    **dict.fromkeys(_EXPONENT_4, 4),
}

MAX_AMOUNT_MINOR = 99_999_999
"""The largest single charge, in minor units (the card networks' eight-digit ceiling)."""
MAX_TOTAL_MINOR = 999_999_999_999
"""The largest sum a limit over many charges may name (a key's 24-hour budget), in minor units: a
thousand of the largest charges and more, far inside PostgreSQL's bigint."""


def normalize_currency(code: str) -> str:
    """The upper-case ISO 4217 code, or UnknownCurrency naming what was given."""
    upper = code.strip().upper()
    if upper not in EXPONENTS:
        shown = code if len(code) <= 8 else code[:8] + "…"
        raise UnknownCurrency(f"Unknown currency {shown!r}: use an ISO 4217 code such as USD, EUR or JPY.")
    return upper


def check_amount(amount_minor: int) -> int:
    """The amount, if it is a positive whole number of minor units within the charge ceiling."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise InvalidRequest("amount_minor must be a whole number of minor units (e.g. 2000 for 20.00 USD).")
    if amount_minor <= 0:
        raise InvalidRequest(f"amount_minor must be positive; got {amount_minor}.")
    if amount_minor > MAX_AMOUNT_MINOR:
        raise InvalidRequest(f"amount_minor must be at most {MAX_AMOUNT_MINOR}; got {amount_minor}.")
    return amount_minor


def format_amount(amount_minor: int, currency: str) -> str:
    """`2000, "USD"` → `"20.00 USD"`; `500, "JPY"` → `"500 JPY"`; `1234, "KWD"` → `"1.234 KWD"`."""
    exponent = EXPONENTS[currency]
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**exponent)
    if exponent == 0:
        return f"{sign}{whole} {currency}"
    return f"{sign}{whole}.{fraction:0{exponent}d} {currency}"


def parse_amount(text: str, currency: str) -> int:
    """`"12.5", "USD"` → `1250`: an amount as people write it, in minor units (exactly; no floats)."""
    code = normalize_currency(currency)
    cleaned = text.strip().upper().removesuffix(code).strip().replace(",", "")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite():
        raise InvalidRequest(f"{text!r} is not an amount; write it like 12.50.")
    minor = amount.scaleb(EXPONENTS[code])
    if minor != minor.to_integral_value():
        raise InvalidRequest(f"{text!r} has more decimals than {code} has ({EXPONENTS[code]}).")
    return int(minor)
