"""One migrated database per test session, made fresh again after every test.

Cloning the template per test (`CREATE DATABASE … TEMPLATE`, then `DROP DATABASE`) copies and removes
hundreds of files each time and was most of the suite's time. Instead, after each test every row a test
could have written is deleted (with triggers and foreign keys off, as the owner) and the rows the
migrations seeded are put back, with every sequence where the template had it: the next test sees what a
fresh clone would show. A test that changed the schema itself (a table, an index, a trigger, a function)
gets a real fresh clone instead, so no change leaks into the next test.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field

import asyncpg

from tests.helpers import with_database

_TABLES = """
SELECT n.nspname AS schema, c.relname AS name, format('%I.%I', n.nspname, c.relname) AS quoted,
       ARRAY(SELECT a.attname FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
              ORDER BY a.attnum) AS columns
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\\_%'
"""
_SEQUENCES = """
SELECT format('%I.%I', schemaname, sequencename) AS name, coalesce(last_value, start_value) AS value,
       last_value IS NOT NULL AS called
  FROM pg_sequences WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
"""
_SCHEMA = """
SELECT md5(concat_ws('|',
    (SELECT string_agg(format('%s.%s:%s', c.relnamespace::regnamespace, c.relname, c.relkind), ',' ORDER BY 1)
       FROM pg_class c WHERE c.relnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
        AND c.relnamespace::regnamespace::text NOT LIKE 'pg\\_%'),
    (SELECT string_agg(format('%s.%s:%s', t.tgrelid::regclass, t.tgname, t.tgenabled), ',' ORDER BY 1)
       FROM pg_trigger t),
    (SELECT string_agg(format('%s:%s', p.oid::regprocedure, md5(p.prosrc)), ',' ORDER BY 1)
       FROM pg_proc p WHERE p.pronamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema')),
    (SELECT string_agg(format('%s:%s', con.conname, con.convalidated), ',' ORDER BY 1) FROM pg_constraint con),
    (SELECT string_agg(format('%s:%s', c.relname, c.relacl), ',' ORDER BY 1) FROM pg_class c WHERE c.relacl IS NOT NULL)
))
"""


@dataclass
class ReusableDatabase:
    server_url: str
    template: str
    name: str = field(default_factory=lambda: f"paywarden_test_{secrets.token_hex(6)}")
    _schema: str = ""
    _seeded: list[tuple[asyncpg.Record, list[asyncpg.Record]]] = field(default_factory=list)
    _tables: list[str] = field(default_factory=list)
    _sequences: list[asyncpg.Record] = field(default_factory=list)

    @property
    def url(self) -> str:
        return with_database(self.server_url, self.name)

    async def create(self) -> None:
        """A clone of the template, and what a fresh clone holds (seeded rows, sequences, schema)."""
        admin = await asyncpg.connect(with_database(self.server_url, "postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{self.name}" TEMPLATE "{self.template}"')
            # A database of our own on any server: commits need not wait for the disk.
            await admin.execute(f'ALTER DATABASE "{self.name}" SET synchronous_commit = off')
        finally:
            await admin.close()
        if self._schema:
            return  # the template has not changed: what it holds is already known
        conn = await asyncpg.connect(self.url)
        try:
            self._schema = await conn.fetchval(_SCHEMA)
            self._sequences = await conn.fetch(_SEQUENCES)
            for table in await conn.fetch(_TABLES):
                self._tables.append(table["quoted"])
                rows = await conn.fetch(f"SELECT * FROM {table['quoted']}")
                if rows:
                    self._seeded.append((table, rows))
        finally:
            await conn.close()

    async def drop(self) -> None:
        admin = await asyncpg.connect(with_database(self.server_url, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await admin.close()

    async def make_fresh(self) -> None:
        """As a fresh clone of the template would be: rows reset, or a new clone if the schema changed (or if
        something left behind still holds a lock after its connection was ended)."""
        conn = await asyncpg.connect(self.url)
        try:
            await _end_other_connections(conn)
            if await conn.fetchval(_SCHEMA) == self._schema:
                try:
                    await self._reset_rows(conn)
                    return
                except asyncpg.LockNotAvailableError:
                    pass
        finally:
            await conn.close()
        await self.drop()
        await self.create()

    async def _reset_rows(self, conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            # Owner-only: triggers (the append-only guards among them) and foreign keys do not fire.
            await conn.execute("SET LOCAL session_replication_role = replica; SET LOCAL lock_timeout = '5s'")
            await conn.execute("".join(f"DELETE FROM {table};" for table in self._tables))
            for table, rows in self._seeded:
                columns = list(table["columns"])
                records = [tuple(row[column] for column in columns) for row in rows]
                await conn.copy_records_to_table(
                    table["name"], schema_name=table["schema"], columns=columns, records=records
                )
            if self._sequences:
                await conn.execute(
                    "SELECT " + ", ".join(
                        f"setval('{s['name']}', {s['value']}, {'true' if s['called'] else 'false'})"
                        for s in self._sequences
                    )
                )  # fmt: skip


async def _end_other_connections(conn: asyncpg.Connection) -> None:
    """Whatever a test left connected (a pool, a server process) is disconnected, and gone, before the reset."""
    others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    await conn.execute(f"SELECT pg_terminate_backend(pid) {others}")
    for _ in range(100):
        if not await conn.fetchval(f"SELECT count(*) {others}"):
            return
        await asyncio.sleep(0.05)
