"""Load as light as it can be made, so the server, not the client, is what a benchmark measures: raw HTTP
with kept-alive connections, and MCP as the JSON-RPC it is on the wire."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx

PROTOCOL = "2025-06-18"
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


class McpCaller:
    """One MCP client connection: initialized once (keeping the session id a stateful server hands out),
    then tools/call after tools/call."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self._url = url
        self._headers = {**MCP_HEADERS, **(headers or {})}
        self._http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=1))
        self._ids = itertools.count(1)

    async def open(self) -> McpCaller:
        params = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}
        answer = await self._post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
        session = answer.headers.get("mcp-session-id")
        self._headers["MCP-Protocol-Version"] = PROTOCOL
        if session:
            self._headers["Mcp-Session-Id"] = session
        await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return self

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        message = {"jsonrpc": "2.0", "id": next(self._ids), "method": "tools/call",
                   "params": {"name": tool, "arguments": arguments}}  # fmt: skip
        result = _jsonrpc_result(await self._post(message))
        if result.get("isError"):
            raise RuntimeError(f"{tool} failed: {result}")
        return result

    async def close(self) -> None:
        await self._http.aclose()

    async def _post(self, message: dict[str, Any]) -> httpx.Response:
        answer = await self._http.post(self._url, content=json.dumps(message), headers=self._headers)
        answer.raise_for_status()
        return answer


def _jsonrpc_result(answer: httpx.Response) -> dict[str, Any]:
    """The result of a JSON-RPC answer sent as JSON or as a server-sent event."""
    text = answer.text
    if answer.headers.get("content-type", "").startswith("text/event-stream"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    body = json.loads(text)
    if "error" in body:
        raise RuntimeError(f"JSON-RPC error: {body['error']}")
    return body["result"]
