"""POST /webhooks/standard: Standard Webhooks signatures, verified by the standardwebhooks library."""

from __future__ import annotations

import base64
import json
import socket
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook

from tests.helpers import call, local_http, local_mcp, running_app

SECRET = "whsec_" + base64.b64encode(b"paywarden-standard-webhooks-test!").decode()
OLD = "whsec_" + base64.b64encode(b"the-secret-that-is-being-rotated").decode()


def signed(body: str, secret: str = SECRET, msg_id: str = "msg_1", at: datetime | None = None) -> dict[str, str]:
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


@pytest.fixture
async def standard_app(settings, listening_socket: socket.socket):
    configured = settings.model_copy(update={"standard_webhook_secret": SecretStr(f"{SECRET},{OLD}")})
    async with running_app(configured, listening_socket):
        yield configured


async def test_a_signed_standard_webhook_moves_the_payment(standard_app, db: asyncpg.Connection) -> None:
    async with local_mcp(standard_app) as client:
        waiting = await call(client, "create_charge", customer_id="cus_sw", idempotency_key="sw", product_id="day_pass")
    intent = {
        "id": waiting["provider_payment_id"],
        "object": "payment_intent",
        "amount": 300,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {"payment_id": waiting["payment_id"]},
    }
    body = json.dumps({"type": "payment_intent.succeeded", "timestamp": datetime.now(UTC).isoformat(), "data": intent})
    headers = signed(body)
    headers["webhook-signature"] = "v1,bm90LXRoZS1zaWduYXR1cmU= " + headers["webhook-signature"]  # several
    async with local_http(base_url=standard_app.base_url) as http:
        response = await http.post("/webhooks/standard", content=body, headers=headers)
        again = await http.post("/webhooks/standard", content=body, headers=headers)
    assert response.status_code == 200 and response.json()["outcome"] == "applied"
    assert again.json()["outcome"] == "duplicate"
    assert await db.fetchval("SELECT status FROM payments") == "succeeded"


@pytest.mark.parametrize(
    ("make_headers", "expected"),
    [
        (
            lambda body: signed(body, secret="whsec_" + base64.b64encode(b"forged-forged-forged").decode()),
            "Invalid or stale",
        ),
        (lambda body: signed(body, at=datetime.now(UTC) - timedelta(minutes=10)), "Invalid or stale"),
        (lambda body: {**signed(body), "webhook-signature": "garbage"}, "Invalid or stale"),
        (lambda body: {"content-type": "application/json"}, "Missing webhook-id"),
    ],
)
async def test_bad_standard_signatures_store_nothing(standard_app, db, make_headers, expected) -> None:
    body = json.dumps({"type": "customer.created", "data": {}})
    async with local_http(base_url=standard_app.base_url) as http:
        response = await http.post("/webhooks/standard", content=body, headers=make_headers(body))
    assert response.status_code == 400 and expected in response.json()["error"]["message"]
    assert await db.fetchval("SELECT count(*) FROM webhook_events") == 0


async def test_an_id_too_long_to_store_is_refused_not_truncated(standard_app, db) -> None:
    """Truncating would let two ids that share their first 255 characters collide: one a duplicate."""
    body = json.dumps({"type": "customer.created", "data": {}})
    async with local_http(base_url=standard_app.base_url) as http:
        response = await http.post("/webhooks/standard", content=body, headers=signed(body, msg_id="m" * 300))
    assert response.status_code == 400 and "longer than 255 characters" in response.json()["error"]["message"]
    assert await db.fetchval("SELECT count(*) FROM webhook_events") == 0


async def test_a_rotated_out_secret_still_verifies_while_listed(standard_app, db) -> None:
    body = json.dumps({"type": "customer.created", "data": {}})
    async with local_http(base_url=standard_app.base_url) as http:
        response = await http.post("/webhooks/standard", content=body, headers=signed(body, secret=OLD, msg_id="m2"))
    assert response.status_code == 200 and response.json()["outcome"] == "unhandled"


async def test_without_a_secret_the_endpoint_says_so(app) -> None:
    body = json.dumps({"type": "customer.created", "data": {}})
    async with local_http(base_url=app.base_url) as http:
        response = await http.post("/webhooks/standard", content=body, headers=signed(body))
    assert response.status_code == 404 and "PAYWARDEN_STANDARD_WEBHOOK_SECRET" in response.json()["error"]["message"]
