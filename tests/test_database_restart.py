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
import httpx
import pytest

from db.migrate import migrate_url
from server import charges
from server.charges import ChargeInput
from server.config import Settings
from server.providers.sandbox import SANDBOX_API_KEY
from server.services import open_services
from tests.conftest import free_socket
from tests.helpers import LOCAL, eventually, serving
from tests.restartable_postgres import RestartablePostgres
from tests.test_payment_paths import click
from webapp.app import build_webapp

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
    ledger = _ledger_settings(ledger_database.url, ledger_socket.getsockname()[1], settings, tmp_path)
    provider = settings.model_copy(
        update={"sandbox_webhook_url": f"{ledger.base_url}/webhooks/stripe", "sandbox_delivery_interval_seconds": 0.1}
    )
    answered: list[int] = []
    async with (
        serving(build_webapp(provider), listening_socket),
        serving(_recording_webhook_answers(build_webapp(ledger), answered), ledger_socket),
        open_services(ledger) as services,
    ):
        waiting = [await _awaiting_the_customer(services, n) for n in range(PAYMENTS)]
        expected = {payment.id: "failed" if n % 4 == 0 else "succeeded" for n, payment in enumerate(waiting)}
        readiness_while_down = await asyncio.gather(
            _customers_decide(waiting), _outage(ledger_database, ledger, answered)
        )
        await eventually(lambda: _all_delivered(db), within=60)

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
    assert readiness_while_down[1] == 503
    assert await db.fetchval("SELECT max(attempts) FROM sandbox.deliveries") > 1  # the provider retried


def _ledger_settings(database_url: str, port: int, provider: Settings, tmp_path: Path) -> Settings:
    """paywarden as it runs against Stripe, with the sandbox of the other app as Stripe."""
    return Settings(
        _env_file=None,
        database_url=database_url,
        host="127.0.0.1",
        port=port,
        data_dir=tmp_path / "ledger",
        provider="stripe",
        stripe_api_key=SANDBOX_API_KEY,
        stripe_api_base=f"{provider.base_url}/sandbox",
        stripe_webhook_secret=provider.stripe_webhook_secret,
        reconcile_interval_seconds=0,
        duplicate_window_seconds=0,
    )


async def _awaiting_the_customer(services, n: int):
    request = ChargeInput(
        f"cus_restart_{n}", "k", "day_pass", None, None, None, "pm_card_authenticationRequired", LOCAL
    )
    payment = (await charges.charge(services, request, "not_asked"))[0]
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
        async with httpx.AsyncClient() as http:
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
