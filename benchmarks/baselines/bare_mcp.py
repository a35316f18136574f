"""Baseline: a bare MCPServer with a no-op tool of check_entitlement's signature, served the SDK's default
way (streamable HTTP, stateful sessions).

    python -m benchmarks.baselines.bare_mcp PORT
"""

from __future__ import annotations

import sys

import uvicorn
from mcp.server import MCPServer

server = MCPServer("bare")


@server.tool()
async def check_entitlement(customer_id: str, feature: str, quantity: int = 1) -> dict:
    """A no-op with check_entitlement's arguments."""
    return {"allowed": True, "customer_id": customer_id, "feature": feature, "quantity": quantity}


if __name__ == "__main__":
    uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
