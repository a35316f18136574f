"""Provider rules that need no server: Stripe's amount units and the live-key guard."""

from __future__ import annotations

import pytest

from server.config import Settings
from server.errors import ConfigurationError, InvalidRequest
from server.providers import check_provider_config
from server.providers.stripe_amounts import from_stripe, to_stripe


@pytest.mark.parametrize(
    ("amount_minor", "currency", "stripe_amount"),
    [(2000, "USD", 2000), (500, "JPY", 500), (1000, "MGA", 10), (5, "ISK", 500), (1230, "KWD", 1230)],
)
def test_amounts_convert_to_stripe_units_and_back(amount_minor: int, currency: str, stripe_amount: int) -> None:
    assert to_stripe(amount_minor, currency) == stripe_amount
    assert from_stripe(stripe_amount, currency) == amount_minor


@pytest.mark.parametrize(("amount_minor", "currency"), [(1050, "MGA"), (1234, "KWD")])
def test_amounts_stripe_cannot_represent_exactly_are_refused(amount_minor: int, currency: str) -> None:
    with pytest.raises(InvalidRequest, match="multiple of") as refused:
        to_stripe(amount_minor, currency)
    assert refused.value.param == "amount_minor"


def stripe_settings(key: str, **extra) -> Settings:
    fields = {"stripe_api_key": key, "stripe_webhook_secret": "whsec_x", "public_url": "https://pay.example.com"}
    return Settings(_env_file=None, provider="stripe", **{**fields, **extra})


def test_a_live_key_is_refused_unless_the_operator_allows_it() -> None:
    with pytest.raises(ConfigurationError, match="PAYWARDEN_ALLOW_LIVE=true"):
        check_provider_config(stripe_settings("sk_live_123"), receives_webhooks=True)
    with pytest.raises(ConfigurationError, match="PAYWARDEN_ALLOW_LIVE=true"):
        check_provider_config(stripe_settings("rk_live_123"), receives_webhooks=False)
    check_provider_config(stripe_settings("sk_live_123", allow_live=True), receives_webhooks=True)
    check_provider_config(stripe_settings("sk_test_123"), receives_webhooks=True)


def test_the_stripe_provider_needs_its_keys() -> None:
    with pytest.raises(ConfigurationError, match="STRIPE_API_KEY"):
        check_provider_config(Settings(_env_file=None, provider="stripe"), receives_webhooks=False)
    with pytest.raises(ConfigurationError, match="STRIPE_WEBHOOK_SECRET"):
        check_provider_config(
            Settings(_env_file=None, provider="stripe", stripe_api_key="sk_test_1"), receives_webhooks=True
        )
    with pytest.raises(ConfigurationError, match="PAYWARDEN_PUBLIC_URL"):  # people come back to its pages
        check_provider_config(stripe_settings("sk_test_1", public_url=None), receives_webhooks=False)
