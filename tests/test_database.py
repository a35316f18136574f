"""What the database itself guarantees: migrations under a lock, an append-only audit, entitlement rules."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from db import roles
from db.migrate import discover_migrations, migrate_url
from server.config import Settings
from server.database import as_role, refuse_owner_role
from server.errors import ConfigurationError
from tests.helpers import (
    approve_everything,
    call,
    free_port,
    local_mcp,
    paywarden_command,
    quiet_settings,
    running_app,
    with_database,
)


@pytest.fixture
async def empty_database(server_url: str, template_database: str):
    """A database with nothing in it, on a server whose roles exist (the template's migration made them): a
    test that logs in as the server's role must not depend on another having run first."""
    name = f"paywarden_empty_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(with_database(server_url, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.mark.slow
async def test_concurrent_migrations_apply_each_file_exactly_once(empty_database: str) -> None:
    results = await asyncio.gather(*(migrate_url(empty_database) for _ in range(4)))
    applied = sorted(m.version for result in results for m in result)
    assert applied == [m.version for m in discover_migrations()]
    assert await migrate_url(empty_database) == []


@pytest.mark.parametrize(
    "statement",
    ["UPDATE payment_audit SET reason = 'rewritten'", "DELETE FROM payment_audit", "TRUNCATE payment_audit"],
)
async def test_the_audit_trail_refuses_to_change(mcp, db: asyncpg.Connection, statement: str) -> None:
    async with mcp() as client:
        await call(client, "create_charge", customer_id="c", idempotency_key="k", product_id="day_pass")
    before = await db.fetch("SELECT * FROM payment_audit ORDER BY id")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await db.execute(statement)
    assert await db.fetch("SELECT * FROM payment_audit ORDER BY id") == before


async def test_buying_twice_stacks_the_periods(mcp) -> None:
    async with mcp(elicitation_callback=approve_everything) as client:
        for key in ("s1", "s2"):
            charge = await call(
                client,
                "create_charge",
                customer_id="cus_s",
                idempotency_key=key,
                product_id="pro_monthly",
                payment_method="pm_card_visa",
            )
            assert charge["status"] == "succeeded"
        answer = await call(client, "check_entitlement", customer_id="cus_s", feature="pro")
    expires = datetime.fromisoformat(answer["expires_at"])
    assert timedelta(days=59, hours=23) < expires - datetime.now(UTC) <= timedelta(days=60)


async def test_an_expired_entitlement_says_expired_and_offers_a_renewal(mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        await call(
            client,
            "create_charge",
            customer_id="cus_e",
            idempotency_key="e1",
            product_id="day_pass",
            payment_method="pm_card_visa",
        )
        await db.execute(
            "UPDATE entitlements SET starts_at = now() - interval '2 days', expires_at = now() - interval '1 day'"
        )
        answer = await call(client, "check_entitlement", customer_id="cus_e", feature="pro")
    assert answer["allowed"] is False and answer["reason"] == "expired"
    assert answer["expires_at"] is not None and answer["offers"]


async def test_amounts_are_whole_minor_units_in_the_database(db: asyncpg.Connection) -> None:
    types = await db.fetch(
        "SELECT column_name, data_type FROM information_schema.columns WHERE column_name LIKE '%amount%'"
    )
    assert types and all(row["data_type"] == "bigint" for row in types)


async def test_the_database_knows_the_state_machine_the_code_has(db: asyncpg.Connection) -> None:
    from server.ledger.payment_machine import ALLOWED

    listed = {(row["from_status"], row["to_status"]) for row in await db.fetch("SELECT * FROM payment_status_moves")}
    assert listed == {(before.value, after.value) for before, nexts in ALLOWED.items() for after in nexts}


async def test_the_database_knows_the_subscription_machine_the_code_has(db: asyncpg.Connection) -> None:
    from server.ledger.subscription_machine import ALLOWED

    rows = await db.fetch("SELECT * FROM subscription_status_moves")
    listed = {(row["from_status"], row["to_status"]) for row in rows}
    assert listed == {(before.value, after.value) for before, nexts in ALLOWED.items() for after in nexts}


async def test_a_hand_written_update_cannot_move_a_payment_backwards(mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        paid = await call(
            client,
            "create_charge",
            customer_id="c",
            idempotency_key="k",
            product_id="day_pass",
            payment_method="pm_card_visa",
        )
        await call(client, "refund_payment", payment_id=paid["payment_id"], idempotency_key="r")
    assert await db.fetchval("SELECT status FROM payments") == "refunded"
    with pytest.raises(asyncpg.CheckViolationError, match="cannot move from refunded to succeeded"):
        await db.execute("UPDATE payments SET status = 'succeeded'")
    assert await db.fetchval("SELECT status FROM payments") == "refunded"


async def test_credits_cannot_appear_without_their_ledger_entry(mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        await call(
            client,
            "create_charge",
            customer_id="c",
            idempotency_key="k",
            product_id="credits_100k",
            payment_method="pm_card_visa",
        )
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="changed without its ledger entry"):
        await db.execute("UPDATE credit_accounts SET granted = granted + 1000000")
    assert await db.fetchval("SELECT granted FROM credit_accounts") == 100_000
    latest = await db.fetchrow("SELECT granted_after, used_after, reserved_after FROM credit_ledger ORDER BY id DESC")
    assert tuple(latest) == (100_000, 0, 0)


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("SET session_replication_role = replica", "permission denied to set parameter"),
        ("ALTER TABLE payment_audit DISABLE TRIGGER USER", "must be owner"),
        ("ALTER TABLE credit_ledger DISABLE TRIGGER USER", "must be owner"),
        ("UPDATE payment_audit SET reason = 'rewritten'", "permission denied"),
        ("DELETE FROM credit_ledger", "permission denied"),
        ("TRUNCATE payment_audit", "permission denied"),
        ("CREATE TABLE mine (id int)", "permission denied"),
        ("INSERT INTO payment_status_moves VALUES ('refunded', 'succeeded')", "permission denied"),
        ("INSERT INTO subscription_status_moves VALUES ('canceled', 'active')", "permission denied"),
        ("UPDATE subscription_audit SET reason = 'rewritten'", "permission denied"),
        ("DELETE FROM subscription_audit", "permission denied"),
    ],
)
async def test_the_server_role_owns_nothing(database_url: str, statement: str, refusal: str) -> None:
    """What the server connects as may read and write rows, and only append to the audit trail and the
    credit ledger: nothing it runs can switch their guards off."""
    server = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.PostgresError, match=refusal):
            await server.execute(statement)
        assert await server.fetchval("SELECT current_user") == "paywarden_server"
    finally:
        await server.close()


async def test_paywarden_refuses_to_serve_as_the_owner(owner_database_url: str) -> None:
    for command in ("up", "mcp"):
        code, out = await asyncio.wait_for(paywarden_command(owner_database_url, command, port=str(free_port())), 30)
        assert code == 2 and "a superuser" in out and "PAYWARDEN_ALLOW_OWNER_ROLE" in out, out


@pytest.fixture
async def table_owner_url(database_url: str, db: asyncpg.Connection) -> AsyncIterator[str]:
    """The test database as a role that is no superuser but owns one of paywarden's tables (and has the
    server's privileges): it could still disable that table's triggers."""
    role = f"paywarden_owner_{secrets.token_hex(4)}"
    owner = await db.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = 'tenants'")
    await db.execute(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER IN ROLE {roles.APP_ROLE}')
    await db.execute(f'ALTER TABLE tenants OWNER TO "{role}"')
    try:
        yield as_role(database_url, role)
    finally:
        await db.execute(f'ALTER TABLE tenants OWNER TO "{owner}"')
        await db.execute(f'DROP ROLE "{role}"')


async def test_a_table_owner_that_is_no_superuser_is_refused_too(table_owner_url: str) -> None:
    code, out = await asyncio.wait_for(paywarden_command(table_owner_url, "up", port=str(free_port())), 30)
    assert code == 2 and "the owner of paywarden's tables" in out and "PAYWARDEN_ALLOW_OWNER_ROLE" in out, out
    with pytest.raises(ConfigurationError, match="the owner of paywarden's tables"):
        await refuse_owner_role(quiet_settings(table_owner_url))


async def test_allow_owner_role_lets_paywarden_serve_as_the_owner(
    owner_database_url: str, table_owner_url: str, settings: Settings, listening_socket
) -> None:
    for owner in (owner_database_url, table_owner_url):  # a superuser, and a table owner
        await refuse_owner_role(quiet_settings(owner, allow_owner_role=True))
    as_owner = settings.model_copy(update={"database_url": owner_database_url, "allow_owner_role": True})
    async with running_app(as_owner, listening_socket), local_mcp(as_owner) as client:
        paid = await call(client, "create_charge", customer_id="c", idempotency_key="k", product_id="pro_monthly",
                          payment_method="pm_card_visa")  # fmt: skip
    assert paid["status"] == "succeeded"


async def test_a_server_role_cannot_migrate_and_says_how(empty_database: str) -> None:
    from server.database import EMBEDDED_SERVER_ROLE

    code, out = await paywarden_command(as_role(empty_database, EMBEDDED_SERVER_ROLE), "migrate")
    assert code == 2 and "may not change the schema" in out and "PAYWARDEN_MIGRATION_DATABASE_URL" in out
    code, out = await paywarden_command(
        as_role(empty_database, EMBEDDED_SERVER_ROLE), "migrate", migration_database_url=empty_database
    )
    assert code == 0 and "applied" in out


async def test_functions_that_run_as_their_owner_resolve_names_in_the_catalog_first(db) -> None:
    """A SECURITY DEFINER function looking in `public` first would run a same-named function anyone may have
    created there (before PostgreSQL 15, everyone could) with the owner's rights."""
    rows = await db.fetch(
        "SELECT p.proname, p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE p.prosecdef AND n.nspname = 'public'"
    )
    assert rows, "the receipt-number event function runs as its owner"
    for row in rows:
        assert "search_path=pg_catalog, pg_temp" in (row["proconfig"] or []), dict(row)
