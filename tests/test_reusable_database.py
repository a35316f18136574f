"""The suite's one database per session is, after each test, what a fresh clone of the template would be."""

from __future__ import annotations

import asyncpg

from tests.reusable_database import ReusableDatabase

COUNTS = """
SELECT (SELECT count(*) FROM tenants) AS tenants, (SELECT count(*) FROM payments) AS payments,
       (SELECT count(*) FROM payment_audit) AS audit, (SELECT count(*) FROM payment_status_moves) AS moves
"""


async def test_rows_and_sequences_come_back_to_the_templates(server_url: str, template_database: str) -> None:
    database = ReusableDatabase(server_url, template_database)
    await database.create()
    try:
        conn = await asyncpg.connect(database.url)
        fresh = dict(await conn.fetchrow(COUNTS))
        first_event_id = await conn.fetchval("SELECT nextval('webhook_events_id_seq')")
        await conn.execute(
            """
            INSERT INTO tenants (id, name) VALUES ('other', 'Other');
            INSERT INTO payments (id, tenant_id, customer_id, amount_minor, currency, provider, status)
            VALUES ('pay_reset', 'other', 'c', 100, 'USD', 'sandbox', 'created');
            UPDATE payments SET status = 'succeeded' WHERE id = 'pay_reset';
            DELETE FROM payment_status_moves WHERE from_status = 'created' AND to_status = 'failed';
            """
        )
        await conn.close()

        await database.make_fresh()

        conn = await asyncpg.connect(database.url)
        assert dict(await conn.fetchrow(COUNTS)) == fresh
        assert await conn.fetchval("SELECT nextval('webhook_events_id_seq')") == first_event_id
        await conn.close()
    finally:
        await database.drop()


async def test_a_changed_schema_gets_a_new_clone(server_url: str, template_database: str) -> None:
    database = ReusableDatabase(server_url, template_database)
    await database.create()
    try:
        conn = await asyncpg.connect(database.url)
        await conn.execute("CREATE TABLE left_behind (id int); ALTER TABLE payment_audit DISABLE TRIGGER USER")
        await conn.close()

        await database.make_fresh()

        conn = await asyncpg.connect(database.url)
        assert await conn.fetchval("SELECT to_regclass('left_behind')") is None
        disabled = await conn.fetchval(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'payment_audit'::regclass AND tgenabled = 'D'"
        )
        assert disabled == 0
        await conn.close()
    finally:
        await database.drop()
