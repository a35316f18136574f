"""The MCP server through real transports: streamable HTTP, stdio, and `paywarden up` as a process."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from mcp import Client, StdioServerParameters

from tests.helpers import (
    call,
    eventually,
    free_port,
    free_socket,
    http_client,
    local_http,
    new_key,
    paywarden_command,
    process_environment,
)

TOOLS = {
    "create_charge",
    "check_entitlement",
    "get_payment",
    "list_payments",
    "get_customer",
    "setup_payment_method",
    "refund_payment",
    "reserve_credits",
    "settle_reservation",
    "release_reservation",
    "consume_credits",
    "start_subscription",
    "get_subscription",
    "change_subscription",
    "cancel_subscription",
}


async def test_tools_over_streamable_http(app, api_key: str) -> None:
    async with http_client(f"{app.base_url}/mcp", api_key) as client:
        listed = await client.list_tools()
        assert {tool.name for tool in listed.tools} == TOOLS
        charge = await call(
            client,
            "create_charge",
            customer_id="cus_h",
            idempotency_key="h1",
            product_id="pro_monthly",
            payment_method="pm_card_visa",
        )
        assert charge["status"] == "succeeded"
        answer = await call(client, "check_entitlement", customer_id="cus_h", feature="pro")
        assert answer["allowed"] is True


async def test_every_tool_has_an_output_schema_and_truthful_annotations(app, api_key: str) -> None:
    async with http_client(f"{app.base_url}/mcp", api_key) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for tool in tools.values():
        assert tool.output_schema and tool.description and tool.annotations
    assert tools["check_entitlement"].annotations.read_only_hint is True
    assert tools["get_payment"].annotations.read_only_hint is True
    assert tools["list_payments"].annotations.read_only_hint is True
    refund = tools["refund_payment"].annotations
    assert (refund.destructive_hint, refund.idempotent_hint, refund.read_only_hint) == (True, True, False)
    charge = tools["create_charge"].annotations
    assert (charge.read_only_hint, charge.idempotent_hint, charge.open_world_hint) == (False, True, True)


@pytest.fixture
def embedded_data_dir() -> Iterator[Path]:
    """A data folder for `paywarden up`'s own embedded PostgreSQL (readable by the system user it runs as)."""
    folder = Path(tempfile.mkdtemp(prefix="paywarden-up-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
async def test_paywarden_up_with_no_settings_serves_everything_and_stops_cleanly(embedded_data_dir: Path) -> None:
    """The README's first command: no DATABASE_URL, so an embedded PostgreSQL of its own, migrated by its
    superuser and used by a server role that owns nothing."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    unset = ("DATABASE_URL", "TEST_DATABASE_URL", "PAYWARDEN_DATABASE_URL", "PAYWARDEN_MIGRATION_DATABASE_URL")
    env = {name: value for name, value in os.environ.items() if name not in unset}
    env.update({"PAYWARDEN_DATA_DIR": str(embedded_data_dir), "PAYWARDEN_ENV_FILE": ""})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "up",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        first_key, printed_before = await _first_key_printed(process)
        await eventually(lambda: _healthy(base), within=30)
        async with http_client(f"{base}/mcp", first_key) as client:
            charge = await call(
                client,
                "create_charge",
                customer_id="cus_u",
                idempotency_key="u1",
                product_id="pro_monthly",
                payment_method="pm_card_visa",
            )
            assert charge["status"] == "succeeded"
        process.send_signal(signal.SIGINT)  # a terminal's Ctrl-C arrives twice under `uv run`:
        process.send_signal(signal.SIGINT)  # from the terminal, and forwarded by uv
        assert await asyncio.wait_for(process.wait(), 15) == 0
        banner = printed_before + (await process.stderr.read()).decode()
        assert f'"Authorization": "Bearer {first_key}"' in banner  # the mcp.json entry carries the key
        assert "Application shutdown complete" in banner and "Traceback" not in banner
        assert f"{base}/mcp" in banner and '"mcpServers"' in banner
        assert "mode: sandbox (local, no real money)" in banner
        assert "Largest single charge: 100000 minor units (the default), e.g. 1000.00 USD" in banner
        # The first key is for local use: the person at the MCP client approves its charges, and it says so.
        assert "approved by the person through your MCP client (client\napproval)" in banner
        assert "keys you create are approved by an operator unless you pass --approval client" in banner
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _healthy(base: str) -> bool:
    try:
        async with local_http() as http:
            response = await http.get(f"{base}/readyz")
            return response.status_code == 200 and response.json()["database"] == "ok"
    except httpx.HTTPError:
        return False


async def _first_key_printed(process: asyncio.subprocess.Process) -> tuple[str, str]:
    """`paywarden up` on a fresh database prints a first API key in its banner, before it serves;
    the key, and everything printed up to it."""
    assert process.stderr is not None
    printed = ""
    while line := (await asyncio.wait_for(process.stderr.readline(), 30)).decode():
        printed += line
        if line.strip().startswith("pwk_"):
            return line.strip(), printed
    raise AssertionError(f"paywarden up printed no first key:\n{printed}")


@pytest.mark.slow
async def test_paywarden_mcp_over_stdio_acts_as_its_configured_tenant(database_url: str) -> None:
    """stdio lists every tool and needs no key; it acts as PAYWARDEN_STDIO_TENANT, and refuses to start for
    a tenant that does not exist."""
    await new_key(database_url, tenant_id="acme")  # creates the tenant
    acme_env = process_environment(database_url, stdio_tenant="acme", port=str(free_port()))
    acme = StdioServerParameters(command=sys.executable, args=["-m", "cli", "mcp"], env=acme_env)
    held = {"customer_id": "c", "idempotency_key": "k", "amount_minor": 9000, "currency": "USD"}
    async with Client(acme) as client:  # above the approval threshold: held, the provider is not asked
        assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
        answer = await call(client, "check_entitlement", customer_id="c", feature="pro")
        assert answer["allowed"] is False
        payment = await call(client, "create_charge", **held)
    assert payment["status"] == "requires_approval"
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT tenant_id FROM payments") == "acme"
    finally:
        await conn.close()
    code, out = await paywarden_command(database_url, "mcp", stdio_tenant="nobody")
    assert code != 0 and "paywarden tenants create nobody" in out
