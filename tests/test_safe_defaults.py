"""A fresh install is safe by default: one call moves at most PAYWARDEN_MAX_CHARGE_MINOR (100000), and an
argument a tool does not take is refused, naming the ones it does, for every tool."""

from __future__ import annotations

import asyncpg
import pytest

from cli.running import banner
from server.config import Settings, read_settings
from server.errors import ConfigurationError
from tests.helpers import call, call_error
from tools.server import TOOL_SCOPES

AD_HOC = {"customer_id": "cus_cap", "currency": "USD", "payment_method": "pm_card_visa"}


async def test_one_call_moves_at_most_the_default_cap(mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        refused = await call_error(client, "create_charge", **AD_HOC, idempotency_key="k1", amount_minor=100_001)
        at_the_cap = await call(client, "create_charge", **AD_HOC, idempotency_key="k2", amount_minor=100_000)
    assert "Refused: 1000.01 USD is over the per-charge limit of 1000.00 USD." in refused
    assert at_the_cap["status"] == "requires_approval"  # allowed by the cap; large, so a person decides
    assert await db.fetchval("SELECT count(*) FROM payments") == 1


@pytest.mark.parametrize(
    ("configured", "cap"), [(None, 100_000), ("none", None), ("0", None), ("00", None), ("+0", None), ("250", 250)]
)
def test_the_cap_is_on_unless_turned_off_explicitly(monkeypatch, configured: str | None, cap: int | None) -> None:
    if configured is None:
        monkeypatch.delenv("PAYWARDEN_MAX_CHARGE_MINOR", raising=False)
    else:
        monkeypatch.setenv("PAYWARDEN_MAX_CHARGE_MINOR", configured)
    settings = Settings(_env_file=None)
    assert settings.max_charge_minor == cap
    said = banner(settings)
    assert ("Largest single charge: no cap" in said) == (cap is None)
    if cap is not None:
        assert f"Largest single charge: {cap} minor units" in said


@pytest.mark.parametrize(("configured", "above"), [("", None), ("  ", None), ("0", 0), ("700", 700)])
def test_an_empty_operator_threshold_leaves_approval_to_each_key(monkeypatch, configured: str, above) -> None:
    monkeypatch.setenv("PAYWARDEN_OPERATOR_APPROVAL_ABOVE_MINOR", configured)
    assert read_settings(None, {}).operator_approval_above_minor == above


def test_a_negative_cap_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("PAYWARDEN_MAX_CHARGE_MINOR", "-5")
    with pytest.raises(ConfigurationError) as refused:
        read_settings(None, {})
    assert refused.value.message == (
        "PAYWARDEN_MAX_CHARGE_MINOR must be a positive number of minor units, or 0 or none to turn the cap off; "
        "got '-5'."
    )


async def test_an_argument_a_tool_does_not_take_is_refused_by_every_tool(mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(listed) == set(TOOL_SCOPES)
        for name, tool in listed.items():
            assert tool.input_schema.get("additionalProperties") is False, name
            accepted = list(tool.input_schema["properties"])
            message = await call_error(client, name, bogus=1)
            assert f"Unknown argument for {name}: bogus. Accepted arguments: {', '.join(accepted)}." in message
        beside_a_product = await call_error(
            client, "create_charge", customer_id="c", idempotency_key="k", product_id="pro_monthly", amount=5
        )
    assert "Unknown argument for create_charge: amount." in beside_a_product
    assert "amount_minor" in beside_a_product  # the agent learns the name it meant
    assert await db.fetchval("SELECT count(*) FROM payments") == 0
