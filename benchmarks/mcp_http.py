"""What an API key costs on /mcp: tool calls over HTTP with a key against the same calls in-process,
and the key check itself (lookup + rate-limit count) against a bare database round trip, same run.

    uv run python -m benchmarks.mcp_http [--calls 500] [--concurrency 4]

Uses DATABASE_URL (or TEST_DATABASE_URL) when set, an embedded PostgreSQL otherwise; works in a
database of its own, dropped at the end. Prints calls per second, per-request milliseconds and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import socket

import httpx
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from benchmarks.harness import rate, scratch_database
from server import api_keys, logs
from server.config import Settings
from server.services import Services, open_services
from server.tenancy import DEFAULT_TENANT, SCOPES
from tools.server import build_server
from webapp.app import build_webapp

CHECK = {"customer_id": "bench", "feature": "pro"}


async def run(calls: int, concurrency: int) -> None:
    async with scratch_database() as url:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # see cli/running.py _listen
        sock.bind(("127.0.0.1", 0))
        settings = Settings(_env_file=None, database_url=url, port=sock.getsockname()[1], reconcile_interval_seconds=0)
        async with open_services(settings, serve_sandbox=True) as services:
            secret = await _key(services)
            in_process = await _in_process(services, calls, concurrency)
            over_http = await _over_http(services, sock, secret, calls, concurrency)
            guard_ms, round_trip_ms = await _guard(services, secret, calls)
    print(f"calls: {calls}, concurrency: {concurrency}")
    print(f"check_entitlement in-process, no transport, no key (baseline): {in_process:8.0f} calls/s")
    print(f"check_entitlement over streamable HTTP with an API key:        {over_http:8.0f} calls/s")
    print(f"ratio HTTP+key / in-process:                                   {over_http / in_process:8.2f}")
    print(f"key check per request (lookup + rate count):                   {guard_ms:8.3f} ms")
    print(f"bare database round trip (SELECT 1, baseline):                 {round_trip_ms:8.3f} ms")


async def _key(services: Services) -> str:
    issued = await api_keys.issue(
        services, tenant_id=DEFAULT_TENANT, name="bench", scopes=list(SCOPES), rate_per_minute=1_000_000
    )
    return issued.secret


async def _in_process(services: Services, calls: int, concurrency: int) -> float:
    async with Client(build_server(services, local_tenant=DEFAULT_TENANT)) as client:
        return await rate(calls, concurrency, lambda n: client.call_tool("check_entitlement", CHECK))


async def _over_http(services: Services, sock: socket.socket, secret: str, calls: int, concurrency: int) -> float:
    app = build_webapp(services, mcp=build_server(services))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    try:
        headers = {"Authorization": f"Bearer {secret}"}
        async with (
            httpx.AsyncClient(headers=headers, timeout=30) as http,
            Client(streamable_http_client(f"{services.settings.base_url}/mcp", http_client=http)) as client,
        ):
            return await rate(calls, concurrency, lambda n: client.call_tool("check_entitlement", CHECK))
    finally:
        server.should_exit = True
        await serving


async def _guard(services: Services, secret: str, calls: int) -> tuple[float, float]:
    """Milliseconds per request of what the key adds (one after another, so it is latency, not throughput)."""

    async def check(n: int) -> None:
        key = await api_keys.find_active(services, secret)
        assert key is not None
        await api_keys.count_request(services, key)

    guard = await rate(calls, 1, check)
    round_trip = await rate(calls, 1, lambda n: services.pool.fetchval("SELECT 1"))
    return 1000 / guard, 1000 / round_trip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    logs.configure("text")
    asyncio.run(run(args.calls, args.concurrency))


if __name__ == "__main__":
    main()
