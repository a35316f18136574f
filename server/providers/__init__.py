"""Payment providers: the protocol paywarden needs, Stripe, and the local Stripe-compatible sandbox."""

from __future__ import annotations

import logging

import asyncpg

from server.config import Settings
from server.errors import ProviderError
from server.providers.base import (
    ChargeRequest,
    EventPage,
    Provider,
    ProviderPayment,
    ProviderRefund,
    RefundRequest,
    WebhookEvent,
)
from server.providers.sandbox import SANDBOX_API_KEY
from server.providers.sandbox import store as sandbox_store
from server.providers.stripe import StripeProvider

__all__ = [
    "ChargeRequest",
    "EventPage",
    "Provider",
    "ProviderConfigError",
    "ProviderPayment",
    "ProviderRefund",
    "RefundRequest",
    "WebhookEvent",
    "check_provider_config",
    "close_at_provider",
    "is_live",
    "open_provider",
    "resolve_webhook_secret",
]


logger = logging.getLogger(__name__)


async def close_at_provider(provider: Provider, provider_payment_id: str) -> None:
    """Cancel a failed payment at the provider, so a later attempt on the same intent cannot take money
    for a payment paywarden already closed. Best effort: what remains shows in the webhook inbox."""
    try:
        await provider.cancel_payment(provider_payment_id)
    except ProviderError as error:
        logger.warning("could not cancel %s at the provider: %s", provider_payment_id, error.message)


class ProviderConfigError(Exception):
    """The provider settings cannot work; the message says which setting to fix."""


def is_live(settings: Settings) -> bool:
    key = settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else ""
    return settings.provider == "stripe" and key.startswith(("sk_live_", "rk_live_"))


def check_provider_config(settings: Settings, *, receives_webhooks: bool) -> None:
    """Refuse to start with settings the provider cannot work with, naming the setting to fix."""
    if settings.provider != "stripe":
        return
    if settings.stripe_api_key is None:
        raise ProviderConfigError("PAYWARDEN_PROVIDER=stripe needs STRIPE_API_KEY.")
    if is_live(settings) and not settings.allow_live:
        raise ProviderConfigError(
            "STRIPE_API_KEY is a live key: paywarden refuses to move real money unless PAYWARDEN_ALLOW_LIVE=true."
        )
    if receives_webhooks and settings.stripe_webhook_secret is None:
        raise ProviderConfigError("PAYWARDEN_PROVIDER=stripe needs STRIPE_WEBHOOK_SECRET to verify webhooks.")


async def resolve_webhook_secret(settings: Settings, pool: asyncpg.Pool) -> str:
    """STRIPE_WEBHOOK_SECRET; for the sandbox without one, the secret it generated and keeps in the database."""
    configured = settings.stripe_webhook_secret.get_secret_value() if settings.stripe_webhook_secret else None
    if settings.provider == "stripe":
        if not configured:
            raise ProviderConfigError("PAYWARDEN_PROVIDER=stripe needs STRIPE_WEBHOOK_SECRET.")
        return configured
    async with pool.acquire() as conn:
        return await sandbox_store.webhook_secret(conn, configured)


def open_provider(settings: Settings, webhook_secret: str | None = None) -> Provider:
    """The configured provider. Without a webhook secret it can charge but not verify webhooks."""
    if settings.provider == "stripe":
        return _stripe(settings, webhook_secret)
    return StripeProvider(
        name="sandbox",
        api_key=SANDBOX_API_KEY,
        api_base=settings.stripe_api_base or f"{settings.base_url}/sandbox",
        webhook_secret=webhook_secret,
        return_url=_return_url(settings),
        timeout_seconds=settings.provider_timeout_seconds,
        webhook_tolerance_seconds=settings.webhook_tolerance_seconds,
        unreachable_hint=(
            f" (The sandbox provider is served by `paywarden up` at {settings.base_url}; "
            "start it if it is not running.)"
        ),
    )


def _return_url(settings: Settings) -> str | None:
    """Where Stripe sends a person back after 3-D Secure. Only an explicit PAYWARDEN_PUBLIC_URL: every
    process must send identical parameters under one idempotency key, and host:port differs between them."""
    return f"{settings.public_url.rstrip('/')}/payments/complete" if settings.public_url else None


def _stripe(settings: Settings, webhook_secret: str | None) -> StripeProvider:
    if settings.stripe_api_key is None:
        raise ProviderConfigError("PAYWARDEN_PROVIDER=stripe needs STRIPE_API_KEY.")
    return StripeProvider(
        name="stripe",
        api_key=settings.stripe_api_key.get_secret_value(),
        api_base=settings.stripe_api_base,
        webhook_secret=webhook_secret,
        return_url=_return_url(settings),
        timeout_seconds=settings.provider_timeout_seconds,
        webhook_tolerance_seconds=settings.webhook_tolerance_seconds,
    )
