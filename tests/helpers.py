"""Small things the tests share."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from mcp import Client
from mcp.types import ElicitRequestParams, ElicitResult


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
