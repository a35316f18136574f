"""Payment providers: the protocol paywarden needs, Stripe, and the local Stripe-compatible sandbox."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from server.config import Settings
from server.errors import ConfigurationError, ProviderError
from server.providers import sandbox
from server.providers.base import (
    BalanceMovement,
    CardChange,
    ChargeRequest,
    CustomerRequest,
    EventPage,
    PlanChange,
    PlanPrice,
    Provider,
    ProviderCard,
    ProviderCustomer,
    ProviderDispute,
    ProviderInvoice,
    ProviderPayment,
    ProviderRefund,
    ProviderSetup,
    ProviderSubscription,
    RefundRequest,
    SetupRequest,
    SubscriptionRequest,
    UnreadableEvent,
    WebhookEvent,
)
from server.providers.sandbox import store as sandbox_store
from server.providers.standard_webhooks import StandardWebhookVerifier
from server.providers.stripe import StripeProvider

__all__ = [
    "BalanceMovement",
    "CardChange",
    "ChargeRequest",
    "Credentials",
    "CustomerRequest",
    "EventPage",
    "PlanChange",
    "PlanPrice",
    "Provider",
    "ProviderCard",
    "ProviderCustomer",
    "ProviderDispute",
    "ProviderInvoice",
    "ProviderPayment",
    "ProviderRefund",
    "ProviderSetup",
    "ProviderSubscription",
    "RefundRequest",
    "SetupRequest",
    "StandardWebhookVerifier",
    "SubscriptionRequest",
    "UnreadableEvent",
    "WebhookEvent",
    "check_provider_config",
    "close_at_provider",
    "credentials",
    "is_live",
    "open_provider",
    "sandbox",
]


logger = logging.getLogger(__name__)


async def close_at_provider(provider: Provider, provider_payment_id: str) -> None:
    """Cancel a failed payment at the provider, so a later attempt on the same intent cannot take money
    for a payment paywarden already closed. Best effort: what remains shows in the webhook inbox."""
    try:
        await provider.cancel_payment(provider_payment_id)
    except ProviderError as error:
        logger.warning("could not cancel %s at the provider: %s", provider_payment_id, error.message)


def is_live(settings: Settings) -> bool:
    key = settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else ""
    return settings.provider == "stripe" and key.startswith(("sk_live_", "rk_live_"))


def check_provider_config(settings: Settings, *, receives_webhooks: bool) -> None:
    """Refuse to start with settings the provider cannot work with, naming the setting to fix."""
    if settings.provider != "stripe":
        return
    if settings.stripe_api_key is None:
        raise ConfigurationError("PAYWARDEN_PROVIDER=stripe needs STRIPE_API_KEY.")
    if is_live(settings) and not settings.allow_live:
        raise ConfigurationError(
            "STRIPE_API_KEY is a live key: paywarden refuses to move real money unless PAYWARDEN_ALLOW_LIVE=true."
        )
    if receives_webhooks and settings.stripe_webhook_secret is None:
        raise ConfigurationError("PAYWARDEN_PROVIDER=stripe needs STRIPE_WEBHOOK_SECRET to verify webhooks.")
    if settings.public_url is None:
        raise ConfigurationError(
            "PAYWARDEN_PROVIDER=stripe needs PAYWARDEN_PUBLIC_URL (e.g. https://pay.example.com): Stripe sends "
            "people back to its pages after they pay, authenticate or save a card."
        )


@dataclass(frozen=True)
class Credentials:
    api_key: str
    webhook_secret: str | None
    """Verifies the provider's webhooks (several, comma-separated, during a rotation); None: this process
    can charge but not receive webhooks."""


async def credentials(settings: Settings, pool: asyncpg.Pool) -> Credentials:
    """STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET; for the sandbox, the secrets it keeps in the database
    (the webhook secret only when STRIPE_WEBHOOK_SECRET is unset)."""
    configured = settings.stripe_webhook_secret.get_secret_value() if settings.stripe_webhook_secret else None
    if settings.provider == "stripe":
        if settings.stripe_api_key is None:
            raise ConfigurationError("PAYWARDEN_PROVIDER=stripe needs STRIPE_API_KEY.")
        return Credentials(settings.stripe_api_key.get_secret_value(), configured)
    async with pool.acquire() as conn:
        return Credentials(await sandbox_store.api_key(conn), await sandbox_store.webhook_secret(conn, configured))


def open_provider(settings: Settings, credentials: Credentials) -> Provider:
    """The configured provider, speaking Stripe's API: to Stripe, or to the sandbox `paywarden up` serves.

    The pages people come back to are on PAYWARDEN_PUBLIC_URL, only when it is set explicitly: every
    process must send identical parameters under one idempotency key, and a host:port default differs
    between processes."""
    if settings.provider == "stripe":
        return _stripe(settings, credentials)
    return StripeProvider(
        name="sandbox",
        api_key=credentials.api_key,
        api_base=settings.stripe_api_base or f"{settings.base_url}/sandbox",
        webhook_secret=credentials.webhook_secret,
        public_url=settings.public_url,
        timeout_seconds=settings.provider_timeout_seconds,
        webhook_tolerance_seconds=settings.webhook_tolerance_seconds,
        unreachable_hint=(
            f" (The sandbox provider is served by `paywarden up` at {settings.base_url}; "
            "start it if it is not running.)"
        ),
    )


def _stripe(settings: Settings, credentials: Credentials) -> StripeProvider:
    return StripeProvider(
        name="stripe",
        api_key=credentials.api_key,
        api_base=settings.stripe_api_base,
        webhook_secret=credentials.webhook_secret,
        public_url=settings.public_url,
        timeout_seconds=settings.provider_timeout_seconds,
        webhook_tolerance_seconds=settings.webhook_tolerance_seconds,
    )
