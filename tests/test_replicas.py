"""Three `paywarden up` replicas on one PostgreSQL behind PgBouncer in transaction mode (Debian's pgbouncer,
started by the test): the race, crash and webhook-storm guarantees hold there too."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
from collections.abc import Iterator
from contextlib import AsyncExitStack
from urllib.parse import urlsplit

import pytest

from server.database import EMBEDDED_SERVER_ROLE
from tests.helpers import (
    WEBHOOK_SECRET,
    call,
    http_client,
    intent_event,
    local_http,
    new_key,
    paywarden_command,
    paywarden_up,
    paywarden_ups,
    signed,
)
from tests.pgbouncer import PgBouncer

pytestmark = pytest.mark.slow  # real processes: scheduled first (tests/conftest.py)

CHARGE = {
    "customer_id": "cus_r",
    "idempotency_key": "same",
    "product_id": "pro_monthly",
    "payment_method": "pm_card_visa",
}


@pytest.fixture
def pgbouncer(server_url: str) -> Iterator[PgBouncer]:
    if shutil.which("pgbouncer") is None:
        if os.environ.get("CI"):
            pytest.fail("pgbouncer is not installed; .ci/run installs Debian's package")
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    with PgBouncer(server_url, default_pool_size=8, extra_users=(EMBEDDED_SERVER_ROLE,)) as bouncer:
        yield bouncer


def behind(pgbouncer: PgBouncer, database_url: str, owner_database_url: str, **extra: str) -> tuple[str, dict]:
    """DATABASE_URL through PgBouncer (transaction pooling), and the settings a replica needs there: direct
    connections for migrations and for hearing key revocations."""
    name = urlsplit(database_url).path.lstrip("/")
    settings = {
        "db_pooler": "transaction",
        "listen_database_url": database_url,
        "migration_database_url": owner_database_url,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "sandbox_deliver_webhooks": "false",
        "reconcile_interval_seconds": "0",
        **extra,
    }
    return pgbouncer.url_for(name, user=EMBEDDED_SERVER_ROLE), settings


async def test_three_replicas_behind_pgbouncer_stay_correct(pgbouncer, database_url, owner_database_url, db) -> None:
    through, settings = behind(pgbouncer, database_url, owner_database_url)
    key = await new_key(database_url)
    async with paywarden_ups(through, 3, **settings) as replicas, AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(http_client(f"{base}/mcp", key)) for base in replicas * 3]
        results = await asyncio.gather(*(client.call_tool("create_charge", CHARGE) for client in clients * 6))
        answers = [result.structured_content for result in results if not result.is_error]
        assert answers and len({answer["payment_id"] for answer in answers}) == 1
        waiting = [
            await call(clients[n], "create_charge", customer_id=f"cus_s{n}", idempotency_key="k", product_id="day_pass")
            for n in range(9)
        ]
        posted = await _storm(replicas, waiting)
        code, report = await paywarden_command(through, "reconcile", port=replicas[0].rsplit(":", 1)[1], **settings)
    assert (await db.fetchval("SELECT count(*) FROM payments WHERE customer_id = 'cus_r'"), code) == (1, 0), report
    assert (
        await db.fetchval(
            "SELECT count(*) FROM sandbox.payment_intents WHERE object->'metadata'->>'customer_id' = 'cus_r'"
        )
        == 1
    )
    statuses = dict(await db.fetch("SELECT id, status FROM payments WHERE customer_id LIKE 'cus_s%'"))
    assert statuses == {payment["payment_id"]: "succeeded" for payment in waiting}
    stored = await db.fetchval("SELECT count(*) FROM webhook_events WHERE event_id LIKE 'evt_rep%'")
    assert stored == len(set(posted))  # each event once, however often and wherever it arrived


async def _storm(replicas: list[str], waiting: list[dict]) -> list[str]:
    """Every payment's events (processing, then succeeded), each posted three times, shuffled, across replicas."""
    events = [
        (f"evt_rep_{kind}_{n}", intent_event(f"payment_intent.{kind}", payment, event_id=f"evt_rep_{kind}_{n}"))
        for n, payment in enumerate(waiting)
        for kind in ("processing", "succeeded")
    ]
    deliveries = [event for event in events for _ in range(3)]
    random.Random(16).shuffle(deliveries)
    async with local_http(timeout=30) as http:
        answers = await asyncio.gather(
            *(
                http.post(f"{replicas[n % 3]}/webhooks/stripe", content=body, headers=signed(body))
                for n, (_, body) in enumerate(deliveries)
            )
        )
    assert all(answer.status_code == 200 for answer in answers)
    return [event_id for event_id, _ in events]


async def test_a_crash_behind_pgbouncer_is_finished_by_another_replica(
    pgbouncer, database_url, owner_database_url, db
) -> None:
    through, settings = behind(pgbouncer, database_url, owner_database_url)
    key = await new_key(database_url)
    async with paywarden_up(through, **settings, test_crash_at="after_provider") as doomed:
        with pytest.raises(Exception):  # noqa: B017 - the server dies mid-call; the client sees the connection drop
            async with http_client(f"{doomed}/mcp", key) as client:
                await client.call_tool("create_charge", CHARGE)
    assert await db.fetchval("SELECT status FROM payments") == "created"
    await db.execute("UPDATE payments SET submit_lease_until = now() - interval '1 second'")  # its lease runs out
    async with paywarden_up(through, **settings) as survivor, http_client(f"{survivor}/mcp", key) as client:
        retried = await call(client, "create_charge", **CHARGE)
    assert retried["replayed"] is True and retried["status"] == "succeeded"
    assert await db.fetchval("SELECT count(*) FROM sandbox.payment_intents") == 1
    assert await db.fetchval("SELECT count(*) FROM entitlements") == 1
