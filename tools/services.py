"""How a tool reaches the services its server's lifespan opened."""

from __future__ import annotations

from mcp.server.mcpserver import Context

from server.services import Services


def services(ctx: Context) -> Services:
    return ctx.request_context.lifespan_context
