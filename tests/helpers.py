"""Small things the tests share."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.types import ElicitRequestParams, ElicitResult

from server import api_keys
from server.tenancy import DEFAULT_TENANT, SCOPES, local_caller

LOCAL = local_caller(DEFAULT_TENANT)
"""The trusted local caller (what stdio and in-process clients act as), for tests below the MCP layer."""


async def new_key(
    database_url: str,
    tenant_id: str = "default",
    scopes: tuple[str, ...] = SCOPES,
    *,
    rate_per_minute: int = 10_000,
    budget_minor: int | None = None,
    budget_currency: str | None = None,
    name: str = "test agent",
) -> str:
    """An API key (created with its tenant if new), as `paywarden keys create` makes one."""
    conn = await asyncpg.connect(database_url)
    try:
        issued, _ = await api_keys.issue(
            conn,
            tenant_id=tenant_id,
            name=name,
            scopes=list(scopes),
            rate_per_minute=rate_per_minute,
            budget_minor=budget_minor,
            budget_currency=budget_currency,
        )
    finally:
        await conn.close()
    return issued.secret


@asynccontextmanager
async def http_client(url: str, key: str | None, **options: Any) -> AsyncIterator[Client]:
    """An MCP client over streamable HTTP that sends `Authorization: Bearer <key>` (none if key is None)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        create_mcp_http_client(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http), **options) as client,
    ):
        yield client


async def approve_everything(context: Any, params: ElicitRequestParams) -> ElicitResult:
    """An elicitation callback: the person says yes to every approval question."""
    return ElicitResult(action="accept", content={"approve": True})


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured result."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail; the message the agent reads."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return " ".join(part.text for part in result.content if hasattr(part, "text"))


@asynccontextmanager
async def serving(asgi_app: Any, sock: socket.socket) -> AsyncIterator[uvicorn.Server]:
    """Serve an ASGI app with uvicorn on an already-bound socket, in this event loop, until the block ends."""
    server = uvicorn.Server(uvicorn.Config(asgi_app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    """Poll until `check` returns something truthy (e.g. a webhook has arrived)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value {value!r}")
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def paywarden_up(database_url: str, **settings: str) -> AsyncIterator[str]:
    """`paywarden up` as its own process on a free port; yields its base URL, stops it afterwards."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "PAYWARDEN_PORT": str(port)}
    env.update({f"PAYWARDEN_{name.upper()}": value for name, value in settings.items()})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        "up",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await eventually(lambda: _healthy(base, process), within=30)
        yield base
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _healthy(base: str, process: asyncio.subprocess.Process) -> bool:
    if process.returncode is not None:
        raise AssertionError(f"paywarden up exited with {process.returncode}")
    try:
        async with httpx.AsyncClient() as http:
            return (await http.get(f"{base}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def paywarden_command(database_url: str, *args: str, **settings: str) -> tuple[int, str]:
    """Run one `paywarden …` command; its exit code and everything it printed."""
    env = {**os.environ, "DATABASE_URL": database_url}
    env.update({f"PAYWARDEN_{name.upper()}": value for name, value in settings.items()})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode()
