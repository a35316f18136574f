"""API keys on /mcp through the SDK's own auth seam: a TokenVerifier and the AuthSettings it needs.

The endpoint answers 401 with `WWW-Authenticate` when the verifier returns None, and a tool reads the
caller from the token it returned (tools/context.py).
"""

from __future__ import annotations

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from server import api_keys
from server.services import Services


class ApiKeyVerifier:
    """Bearer `pwk_…` keys → the SDK's AccessToken; unknown, revoked or malformed keys → None (401)."""

    def __init__(self, services: Services) -> None:
        self._services = services

    async def verify_token(self, token: str) -> AccessToken | None:
        key = await api_keys.find_active(self._services, token)
        if key is None:
            return None
        return AccessToken(
            token=token,
            client_id=key.id,
            scopes=list(key.scopes),
            claims={
                "tenant_id": key.tenant_id,
                "budget_minor": key.budget_minor,
                "budget_currency": key.budget_currency,
                "approval": key.approval,
            },
        )


def api_key_auth(services: Services) -> AuthSettings:
    """Bearer API keys checked by ApiKeyVerifier. There is no OAuth authorization server: keys come from
    `paywarden keys create`; the metadata's issuer is paywarden itself."""
    base = services.settings.base_url
    return AuthSettings(
        issuer_url=base,
        resource_server_url=f"{base}/mcp",
        validate_token_resource=False,  # keys are paywarden's own, for this endpoint only
    )
