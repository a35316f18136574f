"""Crashes and concurrency across real processes: SIGKILL mid-charge, two servers on one database."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import asyncpg
import pytest

from tests.helpers import call, http_client, new_key, paywarden_command, paywarden_up, paywarden_ups, running_app

pytestmark = pytest.mark.slow  # real processes: scheduled first (tests/conftest.py)

CHARGE = {
    "customer_id": "cus_r",
    "idempotency_key": "crash-1",
    "product_id": "pro_monthly",
    "payment_method": "pm_card_visa",
}
QUIET = {"sandbox_deliver_webhooks": "false", "reconcile_interval_seconds": "0"}  # only the fixer under test acts


async def counts(db: asyncpg.Connection) -> tuple[int, int, int]:
    return (
        await db.fetchval("SELECT count(*) FROM payments"),
        await db.fetchval("SELECT count(*) FROM sandbox.payment_intents"),
        await db.fetchval("SELECT count(*) FROM entitlements"),
    )


async def lease_runs_out(db: asyncpg.Connection) -> None:
    """Time passes: the dead process's lease on the payment expires."""
    await db.execute("UPDATE payments SET submit_lease_until = now() - interval '1 second'")


async def crash_during_a_charge(database_url: str, point: str) -> None:
    key = await new_key(database_url)
    async with paywarden_up(database_url, test_crash_at=point, **QUIET) as base:
        with pytest.raises(Exception):  # noqa: B017 - the server dies mid-call; the client sees the connection drop
            async with http_client(f"{base}/mcp", key) as client:
                await client.call_tool("create_charge", CHARGE)


@pytest.mark.parametrize("point", ["before_provider", "after_provider"])
async def test_a_retry_with_the_same_key_finishes_a_crashed_charge(
    settings, listening_socket, database_url, db, point: str
) -> None:
    await crash_during_a_charge(database_url, point)
    assert await db.fetchval("SELECT status FROM payments") == "created"
    assert (await counts(db))[1] == (1 if point == "after_provider" else 0)

    await lease_runs_out(db)
    key = await new_key(database_url)
    quiet = settings.model_copy(update={"sandbox_deliver_webhooks": False, "reconcile_interval_seconds": 0})
    async with (
        running_app(quiet, listening_socket),  # another server, started after the crash
        http_client(f"{quiet.base_url}/mcp", key) as client,
    ):
        retried = await call(client, "create_charge", **CHARGE)
        entitled = await call(client, "check_entitlement", customer_id="cus_r", feature="pro")
    assert retried["replayed"] is True and retried["status"] == "succeeded"
    assert entitled["allowed"] is True
    assert await counts(db) == (1, 1, 1)


@pytest.mark.parametrize("point", ["before_provider", "after_provider"])
async def test_paywarden_reconcile_finishes_a_crashed_charge(
    settings, listening_socket, database_url, db, point: str
) -> None:
    await crash_during_a_charge(database_url, point)
    await lease_runs_out(db)
    quiet = settings.model_copy(update={"sandbox_deliver_webhooks": False, "reconcile_interval_seconds": 0})
    async with running_app(quiet, listening_socket):  # the sandbox, served again after the crash
        port = str(quiet.port)
        code, out = await paywarden_command(database_url, "reconcile", port=port, **QUIET)
        assert code == 0, out
        # Before the provider call there is nothing at the provider: the charge is submitted again.
        # After it, the provider's event list already tells the outcome, and the reconciler applies it.
        assert (
            "resubmitted 1" if point == "before_provider" else "provider events read 2 (applied 1, unreadable 0)"
        ) in out
        code, again = await paywarden_command(database_url, "reconcile", port=port, **QUIET)
    assert "resubmitted 0, updated 0" in again and "(applied 0, " in again
    assert await db.fetchval("SELECT status FROM payments") == "succeeded"
    assert await counts(db) == (1, 1, 1)


async def test_fifty_identical_calls_over_two_servers_make_one_payment(database_url, db) -> None:
    key = await new_key(database_url)
    async with paywarden_ups(database_url, 2) as servers, AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(http_client(f"{base}/mcp", key)) for base in servers * 5]
        results = await asyncio.gather(*(client.call_tool("create_charge", CHARGE) for client in clients * 5))
    assert len(results) == 50
    answers = [r.structured_content for r in results if not r.is_error]
    refusals = [r.content[0].text for r in results if r.is_error]
    assert answers and len({a["payment_id"] for a in answers}) == 1
    assert all("still in progress; retry shortly with the same key" in text for text in refusals)
    payments, intents, _ = await counts(db)
    assert (payments, intents) == (1, 1)


SUBSCRIPTION = {
    "customer_id": "cus_s",
    "idempotency_key": "crash-sub-1",
    "product_id": "pro_ai_monthly",
    "payment_method": "pm_card_visa",
}


async def subscription_counts(db: asyncpg.Connection) -> tuple[int, int, int]:
    """Subscriptions in the ledger, subscriptions at the provider, paid invoices at the provider."""
    return (
        await db.fetchval("SELECT count(*) FROM subscriptions"),
        await db.fetchval("SELECT count(*) FROM sandbox.objects WHERE type = 'subscription'"),
        await db.fetchval("SELECT count(*) FROM sandbox.objects WHERE type = 'invoice' AND object->>'status' = 'paid'"),
    )


async def crash_during_a_subscription_start(database_url: str, point: str) -> None:
    key = await new_key(database_url)
    async with paywarden_up(database_url, test_crash_at=point, **QUIET) as base:
        with pytest.raises(Exception):  # noqa: B017 - the server dies mid-call; the client sees the connection drop
            async with http_client(f"{base}/mcp", key) as client:
                await client.call_tool("start_subscription", SUBSCRIPTION)


@pytest.mark.parametrize("point", ["before_provider", "after_provider"])
async def test_a_retry_with_the_same_key_finishes_a_crashed_subscription_start(
    settings, listening_socket, database_url, db, point: str
) -> None:
    await crash_during_a_subscription_start(database_url, point)
    assert await db.fetchval("SELECT status FROM payments") == "created"
    assert (await subscription_counts(db))[1] == (1 if point == "after_provider" else 0)

    await lease_runs_out(db)
    key = await new_key(database_url)
    quiet = settings.model_copy(update={"sandbox_deliver_webhooks": False, "reconcile_interval_seconds": 0})
    async with (
        running_app(quiet, listening_socket),
        http_client(f"{quiet.base_url}/mcp", key) as client,
    ):
        retried = await call(client, "start_subscription", **SUBSCRIPTION)
        entitled = await call(client, "check_entitlement", customer_id="cus_s", feature="pro")
    assert retried["replayed"] is True and retried["status"] == "active"
    assert entitled["allowed"] is True
    assert await subscription_counts(db) == (1, 1, 1)


@pytest.mark.parametrize("point", ["before_provider", "after_provider"])
async def test_paywarden_reconcile_finishes_a_crashed_subscription_start(
    settings, listening_socket, database_url, db, point: str
) -> None:
    await crash_during_a_subscription_start(database_url, point)
    await lease_runs_out(db)
    quiet = settings.model_copy(update={"sandbox_deliver_webhooks": False, "reconcile_interval_seconds": 0})
    async with running_app(quiet, listening_socket):
        code, out = await paywarden_command(database_url, "reconcile", port=str(quiet.port), **QUIET)
        assert code == 0, out
    assert await db.fetchval("SELECT status FROM subscriptions") == "active"
    assert await db.fetchval("SELECT status FROM payments") == "succeeded"
    assert await subscription_counts(db) == (1, 1, 1)
