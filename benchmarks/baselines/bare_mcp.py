"""Baseline: a bare MCPServer with a no-op tool of check_entitlement's signature.

python -m benchmarks.baselines.bare_mcp PORT            # the SDK's default way: server.run("streamable-http")
                                                        # (stateful sessions, event-stream answers, INFO logs)
python -m benchmarks.baselines.bare_mcp PORT --like-paywarden   # stateless with JSON answers, as paywarden
                                                                # serves /mcp: what the transport alone costs
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
    port = int(sys.argv[1])
    if "--like-paywarden" in sys.argv:
        app = server.streamable_http_app(stateless_http=True, json_response=True)
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="info")
    else:
        server.run("streamable-http", port=port)
