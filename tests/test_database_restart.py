"""Fault injection: the ledger's database stops in the middle of a webhook storm and comes back.

The provider (the sandbox, on the test's usual database) keeps taking payments and delivering their
events; paywarden's sidecar runs on a PostgreSQL cluster of this test's own, which the test stops
and starts. While it is down the sidecar must answer 503, never 2xx for an event it did not store;
the provider retries; afterwards every event is stored once and every payment is true.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from db.migrate import migrate_url
from server import charges
from server.charges import ChargeInput
from server.config import Settings
from server.services import open_services
from tests.helpers import LOCAL, click, eventually, free_socket, local_http, serving
from tests.restartable_postgres import RestartablePostgres
from webapp.app import build_webapp

pytestmark = pytest.mark.slow  # real processes: scheduled first (tests/conftest.py)

PAYMENTS = 60
OUTAGE_AFTER_DELIVERIES = 12


@pytest.fixture
def ledger_database() -> Iterator[RestartablePostgres]:
    cluster = RestartablePostgres()
    try:
        yield cluster
    finally:
        cluster.close()


async def test_the_database_restarts_mid_storm_and_nothing_is_lost(
    settings: Settings, listening_socket, tmp_path: Path, db: asyncpg.Connection, ledger_database
) -> None:
    await migrate_url(ledger_database.url)
    ledger_socket = free_socket()
    ledger_base = f"http://127.0.0.1:{ledger_socket.getsockname()[1]}"
    provider = settings.model_copy(
        update={"sandbox_webhook_url": f"{ledger_base}/webhooks/stripe", "sandbox_delivery_interval_seconds": 0.1}
    )
    answered: list[int] = []
    async with open_services(provider, serve_sandbox=True) as sandbox:
        assert sandbox.sandbox is not None
        ledger = _ledger_settings(ledger_database.url, ledger_socket, provider, sandbox.sandbox.api_key, tmp_path)
        async with (
            serving(build_webapp(sandbox), listening_socket),
            open_services(ledger) as services,
            serving(_recording_webhook_answers(build_webapp(services), answered), ledger_socket),
        ):
            expected, readiness_while_down = await _storm(services, ledger_database, ledger, answered, db)

    ledger_db = await asyncpg.connect(ledger_database.url)
    try:
        assert dict(await ledger_db.fetch("SELECT id, status FROM payments")) == expected
        stored = [row["event_id"] for row in await ledger_db.fetch("SELECT event_id FROM webhook_events")]
        sent = [row["id"] for row in await db.fetch("SELECT id FROM sandbox.events")]
        assert sorted(stored) == sorted(sent)  # every event stored, none twice, none made up
        granted = await ledger_db.fetchval("SELECT count(*) FROM entitlements WHERE revoked_at IS NULL")
        assert granted == list(expected.values()).count("succeeded")
    finally:
        await ledger_db.close()
    assert 503 in answered, "no delivery arrived while the database was down"
    assert readiness_while_down == 503
    assert await db.fetchval("SELECT max(attempts) FROM sandbox.deliveries") > 1  # the provider retried


async def _storm(services, database: RestartablePostgres, ledger: Settings, answered: list[int], db) -> tuple:
    """Payments waiting for their customers, who decide while the ledger's database goes down and up;
    the payments' expected outcomes, and readiness while the database was down."""
    waiting = [await _awaiting_the_customer(services, n) for n in range(PAYMENTS)]
    expected = {payment.payment_id: "failed" if n % 4 == 0 else "succeeded" for n, payment in enumerate(waiting)}
    _, readiness = await asyncio.gather(_customers_decide(waiting), _outage(database, ledger, answered))
    await eventually(lambda: _all_delivered(db), within=60)
    return expected, readiness


def _ledger_settings(database_url: str, sock, provider: Settings, sandbox_key: str, tmp_path: Path) -> Settings:
    """paywarden as it runs against Stripe, with the sandbox of the other app as Stripe."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        host="127.0.0.1",
        port=sock.getsockname()[1],
        data_dir=tmp_path / "ledger",
        provider="stripe",
        stripe_api_key=sandbox_key,
        stripe_api_base=f"{provider.base_url}/sandbox",
        stripe_webhook_secret=provider.stripe_webhook_secret,
        reconcile_interval_seconds=0,
        duplicate_window_seconds=0,
    )


async def _awaiting_the_customer(services, n: int):
    request = ChargeInput(
        customer_id=f"cus_restart_{n}",
        idempotency_key="k",
        product_id="day_pass",
        payment_method="pm_card_authenticationRequired",
        caller=LOCAL,
    )
    payment = await charges.charge(services, request)
    assert payment.status == "requires_action" and payment.next_action_url
    return payment


async def _customers_decide(waiting: list) -> None:
    for n, payment in enumerate(waiting):
        await click(payment.next_action_url, "Decline" if n % 4 == 0 else "Pay")
        await asyncio.sleep(0.05)  # a storm spread over a few seconds, so the outage falls inside it


async def _outage(database: RestartablePostgres, ledger: Settings, answered: list[int]) -> int:
    """Stop the database once deliveries flow, keep it down until one is answered 503, start it again."""
    await eventually(lambda: _true(len(answered) >= OUTAGE_AFTER_DELIVERIES), within=30)
    await database.stop()
    try:
        await eventually(lambda: _true(503 in answered), within=30)
        async with local_http() as http:
            readiness = (await http.get(f"{ledger.base_url}/readyz")).status_code
        await asyncio.sleep(1.0)
    finally:
        await database.start()
    return readiness


async def _true(value: bool) -> bool:
    return value


async def _all_delivered(db: asyncpg.Connection) -> bool:
    return await db.fetchval("SELECT count(*) = 0 FROM sandbox.deliveries WHERE delivered_at IS NULL")


def _recording_webhook_answers(asgi_app: Any, answered: list[int]) -> Any:
    """The ASGI app, noting the status of every answer to a webhook delivery."""

    async def app(scope: dict, receive: Any, send: Any) -> None:
        async def noting(message: dict) -> None:
            if message["type"] == "http.response.start" and scope.get("path", "").startswith("/webhooks/"):
                answered.append(message["status"])
            await send(message)

        await asgi_app(scope, receive, noting)

    return app
