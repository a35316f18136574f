"""The entitlement check, paywarden's hot path, against the cost of the transport alone:

- over MCP streamable HTTP with an API key, against a no-op tool of the same signature on a bare MCPServer
  served the SDK's default way (benchmarks/baselines/bare_mcp.py), and, for what paywarden itself adds,
  on a bare MCPServer served as paywarden serves /mcp (stateless, JSON answers);
- over the HTTP API (GET /v1/customers/{id}/entitlements/{feature}), against a bare FastAPI route doing one
  indexed SELECT behind a static bearer-token compare (benchmarks/baselines/bare_api.py).

Both sides answer for a customer with an active entitlement, from the same table.
"""

from __future__ import annotations

import asyncpg
import httpx

from benchmarks.harness import Measurement, ScratchDatabase, alternate, free_port, server_process
from benchmarks.load import McpCaller
from benchmarks.paywarden_process import WEBHOOK_SECRET, new_key, paywarden_up

CHECK = {"customer_id": "bench", "feature": "pro"}
TOKEN = "baseline-static-token"


async def seed_entitlement(owner_url: str) -> None:
    """One paid month of `pro` for customer `bench` (written as the state machine would leave it)."""
    conn = await asyncpg.connect(owner_url)
    try:
        await conn.execute(
            """
            INSERT INTO payments (id, tenant_id, customer_id, product_id, amount_minor, currency, provider, status)
            VALUES ('pay_bench0', 'default', 'bench', 'pro_monthly', 2000, 'USD', 'sandbox', 'created');
            UPDATE payments SET status = 'succeeded' WHERE id = 'pay_bench0';
            INSERT INTO entitlements (tenant_id, customer_id, feature, payment_id, starts_at, expires_at)
            VALUES ('default', 'bench', 'pro', 'pay_bench0', now(), now() + interval '30 days');
            """
        )
    finally:
        await conn.close()


async def over_mcp(
    database: ScratchDatabase, rounds: int, operations: int, concurrency: int
) -> tuple[Measurement, Measurement]:
    return await _over_mcp(database, rounds, operations, concurrency, [])


async def over_mcp_same_transport(
    database: ScratchDatabase, rounds: int, operations: int, concurrency: int
) -> tuple[Measurement, Measurement]:
    """Against a bare server on paywarden's own transport settings: what paywarden adds to the transport."""
    return await _over_mcp(database, rounds, operations, concurrency, ["--like-paywarden"])


async def _over_mcp(
    database: ScratchDatabase, rounds: int, operations: int, concurrency: int, bare_options: list[str]
) -> tuple[Measurement, Measurement]:
    key = await new_key(database)
    bare_port = free_port()
    bare = ["-m", "benchmarks.baselines.bare_mcp", str(bare_port), *bare_options]
    async with paywarden_up(database) as base, server_process(bare, {}, f"http://127.0.0.1:{bare_port}/"):
        ours = [await McpCaller(f"{base}/mcp", {"Authorization": f"Bearer {key}"}).open() for _ in range(concurrency)]
        theirs = [await McpCaller(f"http://127.0.0.1:{bare_port}/mcp").open() for _ in range(concurrency)]
        try:
            return await alternate(
                rounds,
                operations,
                concurrency,
                lambda n: ours[n % concurrency].call("check_entitlement", CHECK),
                lambda n: theirs[n % concurrency].call("check_entitlement", CHECK),
            )
        finally:
            for caller in ours + theirs:
                await caller.close()


async def over_http(
    database: ScratchDatabase, rounds: int, operations: int, concurrency: int
) -> tuple[Measurement, Measurement]:
    key = await new_key(database)
    bare_port = free_port()
    bare = ["-m", "benchmarks.baselines.bare_api", str(bare_port), database.server_url, TOKEN, WEBHOOK_SECRET]
    async with (
        paywarden_up(database) as base,
        server_process(bare, {}, f"http://127.0.0.1:{bare_port}/docs"),
        httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, limits=_limits(concurrency)) as ours,
        httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, limits=_limits(concurrency)) as theirs,
    ):
        return await alternate(
            rounds,
            operations,
            concurrency,
            lambda n: _ok(ours.get(f"{base}/v1/customers/bench/entitlements/pro")),
            lambda n: _ok(theirs.get(f"http://127.0.0.1:{bare_port}/check/bench/pro")),
        )


def _limits(concurrency: int) -> httpx.Limits:
    return httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)


async def _ok(request) -> None:
    answer = await request
    answer.raise_for_status()
    assert answer.json()["allowed"] is True
