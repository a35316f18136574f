"""Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature; `whsec_` secrets), verified with
the `standardwebhooks` library, for providers that sign that way.

The payload is `{"type": …, "data": …}` with Stripe's event types and objects (a payment intent as
`data` or `data.object`); the event id is the `webhook-id` header. Several secrets may be configured,
comma-separated, and a header may carry several signatures: any match is enough.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from server.errors import ConfigurationError, MalformedEvent, WebhookRejected
from server.providers.base import WebhookEvent
from server.providers.stripe import event_from_payload

MAX_ID_LENGTH = 255
"""The inbox's event ids are at most this long, as Stripe's; longer ones are refused, never truncated (two
ids sharing a prefix must not collide)."""


class StandardWebhookVerifier:
    def __init__(self, secrets: str) -> None:
        try:
            self._webhooks = [Webhook(secret.strip()) for secret in secrets.split(",") if secret.strip()]
        except (binascii.Error, ValueError) as error:
            raise ConfigurationError("PAYWARDEN_STANDARD_WEBHOOK_SECRET must be whsec_ followed by base64") from error

    def verify(self, payload: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        wanted = {name: headers.get(name, "") for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
        if not all(wanted.values()):
            raise WebhookRejected(
                "Missing webhook-id, webhook-timestamp or webhook-signature header; nothing was stored."
            )
        text = _text(payload)
        if not any(self._matches(webhook, text, wanted) for webhook in self._webhooks):
            raise WebhookRejected(
                "Invalid or stale Standard Webhooks signature (none matches this body within 5 minutes); "
                "nothing was stored."
            )
        if len(wanted["webhook-id"]) > MAX_ID_LENGTH:
            raise WebhookRejected(f"The webhook-id is longer than {MAX_ID_LENGTH} characters; nothing was stored.")
        return event_from_payload(_as_event(wanted["webhook-id"], _json(text)), raw=text)

    @staticmethod
    def _matches(webhook: Webhook, text: str, headers: dict[str, str]) -> bool:
        try:
            webhook.verify(text, headers, json_parse=False)
        except (WebhookVerificationError, ValueError, binascii.Error):  # malformed headers count as no match
            return False
        return True


def _as_event(event_id: str, payload: Any) -> Any:
    if not isinstance(payload, dict):
        return payload
    data = payload.get("data")
    wrapped = isinstance(data, dict) and isinstance(data.get("object"), dict)  # {"object": {…}} or the object itself
    obj = data["object"] if wrapped else data
    return {"id": event_id, "type": payload.get("type"), "data": {"object": obj}}


def _text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected("The body is not UTF-8; nothing was stored.") from None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise MalformedEvent("The body is not valid JSON (or is nested too deeply).", text) from None
