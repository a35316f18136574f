"""Payment providers: the protocol paywarden needs, Stripe, and the local Stripe-compatible sandbox."""

from __future__ import annotations

import asyncpg

from server.config import Settings
from server.providers.base import ChargeRequest, Provider, ProviderPayment, WebhookEvent
from server.providers.sandbox import SANDBOX_API_KEY
from server.providers.sandbox import store as sandbox_store
from server.providers.stripe import StripeProvider

__all__ = [
    "ChargeRequest",
    "Provider",
    "ProviderConfigError",
    "ProviderPayment",
    "WebhookEvent",
    "check_provider_config",
    "open_provider",
    "resolve_webhook_secret",
]


class ProviderConfigError(Exception):
    """The provider settings cannot work; the message says which setting to fix."""


def check_provider_config(settings: Settings, *, receives_webhooks: bool) -> None:
    """Refuse to start with settings the provider cannot work with, naming the setting to fix."""
    if settings.provider != "stripe":
        return
    if settings.stripe_api_key is None:
        raise ProviderConfigError("PAYWARDEN_PROVIDER=stripe needs STRIPE_API_KEY.")
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
        return_url=f"{settings.base_url}/payments/complete",
        timeout_seconds=settings.provider_timeout_seconds,
        webhook_tolerance_seconds=settings.webhook_tolerance_seconds,
    )


def _stripe(settings: Settings, webhook_secret: str | None) -> StripeProvider:
    if settings.stripe_api_key is None:
        raise ProviderConfigError("PAYWARDEN_PROVIDER=stripe needs STRIPE_API_KEY.")
    return StripeProvider(
        name="stripe",
        api_key=settings.stripe_api_key.get_secret_value(),
        api_base=settings.stripe_api_base,
        webhook_secret=webhook_secret,
        return_url=f"{settings.base_url}/payments/complete",
        timeout_seconds=settings.provider_timeout_seconds,
        webhook_tolerance_seconds=settings.webhook_tolerance_seconds,
    )
