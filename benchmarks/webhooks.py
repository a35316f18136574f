"""Signed webhook ingest: paywarden's /webhooks/stripe (the signature through the `stripe` library, the inbox,
the transition, the audit row, the grant) against a bare FastAPI + asyncpg endpoint doing the same HMAC check,
an inbox insert and a row update in one transaction (benchmarks/baselines/bare_api.py).

Each operation is a payment_intent.succeeded for a payment of its own, waiting for its customer.
"""

from __future__ import annotations

import json
import os
import time

import asyncpg
import httpx
import stripe

from benchmarks.entitlements import TOKEN
from benchmarks.harness import CpuProbe, Measurement, ScratchDatabase, alternate, free_port, server_process
from benchmarks.paywarden_process import WEBHOOK_SECRET, paywarden_process


async def seed_waiting_payments(owner_url: str, count: int) -> None:
    """`count` payments waiting for their customers (requires_action at the provider), and the baseline's
    own inbox and rows."""
    conn = await asyncpg.connect(owner_url)
    try:
        await conn.execute(
            """
            INSERT INTO payments (id, tenant_id, customer_id, product_id, amount_minor, currency, provider, status,
                                  provider_payment_id, grants)
            SELECT 'pay_b' || lpad(n::text, 20, '0'), 'default', 'bench_' || n, 'pro_monthly', 2000, 'USD',
                   'sandbox', 'created', 'pi_b' || n, '[{"feature": "pro", "days": 30}]'::jsonb
              FROM generate_series(0, $1 - 1) n;
            UPDATE payments SET status = 'requires_action' WHERE id LIKE 'pay_b0%';
            CREATE TABLE bench_inbox (event_id text PRIMARY KEY, payload text NOT NULL);
            CREATE TABLE bench_rows (id text PRIMARY KEY, status text NOT NULL);
            INSERT INTO bench_rows SELECT 'pi_b' || n, 'requires_action' FROM generate_series(0, $1 - 1) n;
            GRANT SELECT, INSERT, UPDATE ON bench_inbox, bench_rows TO paywarden_app;
            """.replace("$1", str(int(count)))
        )
    finally:
        await conn.close()


def event(n: int, prefix: str) -> str:
    intent = {"id": f"pi_b{n}", "object": "payment_intent", "amount": 2000, "currency": "usd", "status": "succeeded",
              "metadata": {"payment_id": f"pay_b{n:020d}"}}  # fmt: skip
    return json.dumps({"id": f"evt_{prefix}{n}", "object": "event", "type": "payment_intent.succeeded",
                       "data": {"object": intent}})  # fmt: skip


def signed(body: str) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(body, WEBHOOK_SECRET, int(time.time()))
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


async def ingest(
    database: ScratchDatabase, rounds: int, operations: int, concurrency: int
) -> tuple[Measurement, Measurement]:
    await seed_waiting_payments(database.owner_url, rounds * operations)
    bare_port = free_port()
    bare = ["-m", "benchmarks.baselines.bare_api", str(bare_port), database.server_url, TOKEN, WEBHOOK_SECRET]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with (
        paywarden_process(database) as (base, server_pid),
        server_process(bare, {}, f"http://127.0.0.1:{bare_port}/docs") as bare_pid,
        httpx.AsyncClient(limits=limits, timeout=30) as http,
    ):

        async def ours(n: int) -> None:
            body = event(n, "p")
            answer = await http.post(f"{base}/webhooks/stripe", content=body, headers=signed(body))
            assert answer.status_code == 200 and answer.json()["outcome"] == "applied", answer.text

        async def theirs(n: int) -> None:
            body = event(n, "b")
            answer = await http.post(f"http://127.0.0.1:{bare_port}/hook", content=body, headers=signed(body))
            answer.raise_for_status()

        probes = (
            CpuProbe({"load generator": os.getpid(), "server": server_pid}),
            CpuProbe({"load generator": os.getpid(), "server": bare_pid}),
        )
        return await alternate(rounds, operations, concurrency, ours, theirs, probes)
