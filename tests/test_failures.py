"""A dead database or an unreachable provider: a clear error, nothing half-written, and a safe retry."""

from __future__ import annotations

import asyncpg
from mcp import Client

from server.services import open_services
from server.tenancy import DEFAULT_TENANT
from tests.helpers import call, call_error, database_refusing_connections
from tools.server import build_server

CHARGE = {
    "customer_id": "cus_f",
    "idempotency_key": "f1",
    "product_id": "pro_monthly",
    "payment_method": "pm_card_visa",
}


async def test_a_dead_database_fails_closed_with_a_clear_message(services, owner_database_url: str) -> None:
    async with (
        Client(build_server(services, local_tenant=DEFAULT_TENANT)) as client,
        database_refusing_connections(owner_database_url),
    ):
        entitlement = await call_error(client, "check_entitlement", customer_id="cus_f", feature="pro")
        charge = await call_error(client, "create_charge", **CHARGE)
        lookup = await call_error(client, "get_payment", payment_id="pay_0123456789abcdef01234567")
    assert "Treat the customer as NOT entitled" in entitlement
    assert "database is not answering. Retry shortly" in charge
    assert "database is not answering" in lookup
    for message in (entitlement, charge, lookup):
        assert "Traceback" not in message and "Errno" not in message and "paywarden_test" not in message


async def test_an_unreachable_provider_leaves_a_payment_the_same_key_can_finish(app, db: asyncpg.Connection) -> None:
    unreachable = app.settings.model_copy(update={"stripe_api_base": "http://127.0.0.1:1/sandbox"})
    async with (
        open_services(unreachable) as services,
        Client(build_server(services, local_tenant=DEFAULT_TENANT)) as client,
    ):
        message = await call_error(client, "create_charge", **CHARGE)
    assert "may or may not have gone through. Retry with the SAME idempotency_key" in message
    assert "start it if it is not running" in message
    assert await db.fetchval("SELECT status FROM payments") == "created"
    assert await db.fetchval("SELECT count(*) FROM sandbox.payment_intents") == 0

    async with Client(build_server(app.services, local_tenant=DEFAULT_TENANT)) as client:
        retried = await call(client, "create_charge", **CHARGE)
    assert retried["replayed"] is True and retried["status"] == "succeeded"
    assert await db.fetchval("SELECT count(*) FROM payments") == 1
    assert await db.fetchval("SELECT count(*) FROM sandbox.payment_intents") == 1
