"""The sandbox provider behaves like the parts of Stripe paywarden uses, driven by the official SDK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
import stripe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db.pool import create_pool
from server.providers.sandbox import events, store
from server.providers.sandbox.delivery import WebhookDeliverer, backoff_seconds
from tests.helpers import free_socket, local_http, serving


@pytest.fixture
def stripe_client(app) -> stripe.StripeClient:
    return stripe.StripeClient(
        app.services.sandbox.api_key,
        base_addresses={"api": f"{app.base_url}/sandbox"},
        http_client=stripe.HTTPXClient(),
    )


PARAMS = {"amount": 700, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True, "metadata": {"k": "v"}}


async def test_same_idempotency_key_returns_the_same_intent(stripe_client) -> None:
    first = await stripe_client.v1.payment_intents.create_async(PARAMS, {"idempotency_key": "same"})
    again = await stripe_client.v1.payment_intents.create_async(PARAMS, {"idempotency_key": "same"})
    assert first.id == again.id and first.status == "succeeded" and first.metadata["k"] == "v"
    with pytest.raises(stripe.IdempotencyError):
        await stripe_client.v1.payment_intents.create_async({**PARAMS, "amount": 701}, {"idempotency_key": "same"})


async def test_retrieve_confirm_and_cancel(stripe_client) -> None:
    created = await stripe_client.v1.payment_intents.create_async({"amount": 300, "currency": "usd"})
    assert created.status == "requires_payment_method" and created.next_action is None  # as Stripe's
    needs_person = await stripe_client.v1.payment_intents.confirm_async(
        created.id, {"payment_method": "pm_card_authenticationRequired", "return_url": "https://shop.example/back"}
    )
    assert needs_person.status == "requires_action"
    fetched = await stripe_client.v1.payment_intents.retrieve_async(created.id)
    assert fetched.next_action.redirect_to_url.url.endswith(f"/sandbox/pay/{created.id}")
    assert fetched.next_action.redirect_to_url.return_url == "https://shop.example/back"
    with pytest.raises(stripe.CardError) as declined:
        await stripe_client.v1.payment_intents.confirm_async(created.id, {"payment_method": "pm_card_chargeDeclined"})
    assert declined.value.code == "card_declined"
    canceled = await stripe_client.v1.payment_intents.cancel_async(created.id)
    assert canceled.status == "canceled"
    with pytest.raises(stripe.InvalidRequestError):
        await stripe_client.v1.payment_intents.retrieve_async("pi_missing")


async def test_live_keys_are_refused(app) -> None:
    live = stripe.StripeClient(
        "sk_live_x", base_addresses={"api": f"{app.base_url}/sandbox"}, http_client=stripe.HTTPXClient()
    )
    with pytest.raises(stripe.AuthenticationError):
        await live.v1.payment_intents.create_async({"amount": 300, "currency": "usd"})


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_seconds(n) for n in range(4)] == [1, 2, 4, 8]
    assert backoff_seconds(30) == 300


async def test_webhooks_are_retried_until_acknowledged(database_url: str) -> None:
    """A receiver that fails twice: the third attempt lands, correctly signed, and is not sent again."""
    secret = "whsec_retry_test"
    received: list[tuple[str, str]] = []

    async def flaky(request: Request) -> Response:
        body = (await request.body()).decode()
        stripe.WebhookSignature.verify_header(body, request.headers["stripe-signature"], secret, 300)
        received.append((json.loads(body)["id"], body))
        return Response(status_code=500 if len(received) < 3 else 200)

    sock = free_socket()
    receiver = Starlette(routes=[Route("/hook", flaky, methods=["POST"])])
    async with serving(receiver, sock), _pool(database_url) as pool:
        event = events.event("payment_intent.succeeded", {"id": "pi_1"}, None)
        async with pool.acquire() as conn:
            await store.insert_event(conn, event)
        deliverer = WebhookDeliverer(pool, f"http://127.0.0.1:{sock.getsockname()[1]}/hook", secret)
        for _ in range(5):
            await deliverer.deliver_due()
            await _make_due_now(pool)
        await deliverer.close()
        row = await pool.fetchrow("SELECT attempts, delivered_at, last_error FROM sandbox.deliveries")
    sock.close()
    assert [event_id for event_id, _ in received] == [event["id"]] * 3
    assert row["attempts"] == 3 and row["delivered_at"] is not None and row["last_error"] is None


async def test_delivery_stops_when_it_is_cancelled_as_it_is_woken(database_url: str) -> None:
    """Stopping the server cancels the delivery loop; an event stored at that moment wakes it too. Waiting
    through asyncio.wait_for, Python 3.11 let the wake-up swallow the cancellation, and the loop ran on while
    the server waited for it to end (a test's teardown hung once in about twenty suite runs)."""
    async with _pool(database_url) as pool:
        deliverer = WebhookDeliverer(pool, "http://127.0.0.1:9/hook", "whsec_stop_test", poll_seconds=60)
        for _ in range(20):
            task = asyncio.create_task(deliverer.run_forever())
            await asyncio.sleep(0.05)  # past its first pass over an empty queue: waiting to be woken
            deliverer.wake()
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=5)
            assert done == {task} and task.cancelled()
            deliverer = WebhookDeliverer(pool, "http://127.0.0.1:9/hook", "whsec_stop_test", poll_seconds=60)
        await deliverer.close()


async def _make_due_now(pool: asyncpg.Pool) -> None:
    await pool.execute("UPDATE sandbox.deliveries SET next_attempt_at = now() WHERE delivered_at IS NULL")


@asynccontextmanager
async def _pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url)
    try:
        yield pool
    finally:
        await pool.close()


async def test_the_sandbox_api_answers_only_paywarden_itself(app) -> None:
    """It holds every tenant's payments: a wrong key, or a request addressed to another host name (DNS
    rebinding), gets nothing."""

    async with local_http(base_url=f"{app.base_url}/sandbox") as http:
        right = {"Authorization": f"Bearer {app.services.sandbox.api_key}"}
        assert (await http.get("/v1/events", headers=right)).status_code == 200
        for guess in ("sk_test_guess", "sk_test_sandbox"):  # the well-known key of earlier versions opens nothing
            assert (await http.get("/v1/events", headers={"Authorization": f"Bearer {guess}"})).status_code == 401
        as_curl_u = httpx.BasicAuth(app.services.sandbox.api_key, "")  # Stripe's `curl -u KEY:`, as test mode takes
        assert (await http.get("/v1/events", auth=as_curl_u)).status_code == 200
        assert (await http.get("/v1/events", auth=httpx.BasicAuth("sk_test_guess", ""))).status_code == 401
        assert (await http.get("/v1/events", headers={"Authorization": "Basic %%%"})).status_code == 401
        rebound = await http.get("/v1/events", headers={**right, "Host": "evil.example"})
        assert rebound.status_code == 403 and "addressed to this machine" in rebound.json()["error"]["message"]
