"""What one `paywarden up` on one PostgreSQL sustains here, operation by operation, each alone at full load
(the figures in docs/scaling.md). No baseline: this is a capacity, not a comparison.

    uv run python -m benchmarks.capacity [OPERATIONS] [CONCURRENCY]

The load runs on the same machine, so on 2 cores the server, PostgreSQL and the client share them: a
machine of its own per part sustains more.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import httpx

from benchmarks import credits, entitlements, webhooks
from benchmarks.harness import Measurement, measure, scratch_database
from benchmarks.load import McpCaller
from benchmarks.paywarden_process import new_key, paywarden_up
from server import logs
from server.config import Settings
from server.services import open_services


async def capacities(operations: int, concurrency: int) -> list[tuple[str, Measurement]]:
    async with scratch_database() as database:
        await entitlements.seed_entitlement(database.owner_url)
        await webhooks.seed_waiting_payments(database.owner_url, operations)
        async with open_services(Settings(_env_file=None, database_url=database.server_url)) as services:
            await credits.grant(services.pool, "bench", 10 * operations)
        key = await new_key(database)
        auth = {"Authorization": f"Bearer {key}"}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        client = httpx.AsyncClient(headers=auth, limits=limits)
        async with paywarden_up(database) as base, client as http:
            http.base_url = base
            mcp = [await McpCaller(f"{base}/mcp", auth).open() for _ in range(concurrency)]
            try:
                load = _operations(http, mcp)
                return [(name, await measure(operations, concurrency, run)) for name, run in load.items()]
            finally:
                for caller in mcp:
                    await caller.close()


def _operations(http: httpx.AsyncClient, mcp: list[McpCaller]) -> dict[str, Callable[[int], Awaitable[None]]]:
    async def check_over_mcp(n: int) -> None:
        await mcp[n % len(mcp)].call("check_entitlement", entitlements.CHECK)

    async def check_over_http(n: int) -> None:
        _ok(await http.get("/v1/customers/bench/entitlements/pro"))

    async def charge(n: int) -> None:
        body = {"customer_id": f"c{n}", "product_id": "pro_monthly", "payment_method": "pm_card_visa"}
        _ok(await http.post("/v1/charges", json=body, headers={"Idempotency-Key": f"c{n}"}))

    async def consume(n: int) -> None:
        body = {"customer_id": "bench", "feature": credits.FEATURE, "quantity": 1}
        _ok(await http.post("/v1/credits/consumptions", json=body, headers={"Idempotency-Key": f"u{n}"}))

    async def webhook(n: int) -> None:
        body = webhooks.event(n, "c")
        _ok(await http.post("/webhooks/stripe", content=body, headers=webhooks.signed(body)))

    return {
        "check_entitlement over MCP": check_over_mcp,
        "GET /v1/…/entitlements/{feature}": check_over_http,
        "POST /v1/charges (sandbox card, paid at once)": charge,
        "signed webhook ingest (a payment succeeds)": webhook,
        "consume_credits, one customer (one busy row)": consume,
    }


def _ok(answer: httpx.Response) -> None:
    if answer.status_code >= 300:
        raise RuntimeError(f"{answer.request.method} {answer.request.url.path}: {answer.status_code} {answer.text}")


def main() -> None:
    operations = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    logs.configure("text")
    print(f"{'operation':<48} {'per second':>10} {'p50 ms':>7} {'p99 ms':>7}")
    for name, measured in asyncio.run(capacities(operations, concurrency)):
        print(f"{name:<48} {measured.per_second:>10.0f} {measured.p50_ms:>7.2f} {measured.p99_ms:>7.2f}")


if __name__ == "__main__":
    main()
