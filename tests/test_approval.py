"""Charges above the approval threshold ask the person; nothing proceeds without an answer."""

from __future__ import annotations

import asyncpg
import pytest
from mcp.types import ElicitResult

from tests.helpers import call, call_error, paywarden_command

BIG = {
    "customer_id": "cus_a",
    "idempotency_key": "big-1",
    "amount_minor": 12_000,
    "currency": "USD",
    "description": "GPU hours",
    "payment_method": "pm_card_visa",
}


def answering(action: str, content: dict | None = None):
    asked: list[str] = []

    async def callback(context, params) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action=action, content=content)

    return callback, asked


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # a 2026 multi-round client, and a request mid-call
async def test_the_person_approves_and_the_charge_goes_through(mcp, db: asyncpg.Connection, mode: str) -> None:
    callback, asked = answering("accept", {"approve": True})
    async with mcp(elicitation_callback=callback, mode=mode) as client:
        charge = await call(client, "create_charge", **BIG)
    assert charge["status"] == "succeeded"
    assert asked == [
        "Approve charging customer 'cus_a' 120.00 USD for 'GPU hours'? Approval is needed because it is above "
        "the approval threshold of 50.00 USD."
    ]
    first = await db.fetchval("SELECT reason FROM payment_audit ORDER BY id LIMIT 1")
    assert "approved by the person" in first


async def test_declining_or_cancelling_records_a_canceled_payment(mcp, db: asyncpg.Connection) -> None:
    for n, (action, content) in enumerate([("decline", None), ("cancel", None), ("accept", {"approve": False})]):
        callback, asked = answering(action, content)
        async with mcp(elicitation_callback=callback) as client:
            charge = await call(client, "create_charge", **{**BIG, "idempotency_key": f"no-{n}"})
        assert len(asked) == 1
        assert charge["status"] == "canceled" and "declined" in charge["failure_reason"]
        assert charge["next_step"] == "Canceled: the person declined the charge when asked. Nothing was charged."
    assert await db.fetchval("SELECT count(*) FROM sandbox.payment_intents") == 0


async def test_a_replay_does_not_ask_again(mcp) -> None:
    callback, asked = answering("accept", {"approve": True})
    async with mcp(elicitation_callback=callback) as client:
        await call(client, "create_charge", **BIG)
        again = await call(client, "create_charge", **BIG)
    assert again["replayed"] is True and len(asked) == 1


async def test_small_catalog_charges_need_no_approval(mcp) -> None:
    callback, asked = answering("decline")
    async with mcp(elicitation_callback=callback) as client:
        charge = await call(
            client,
            "create_charge",
            customer_id="cus_a",
            idempotency_key="small",
            product_id="pro_monthly",
            payment_method="pm_card_visa",
        )
    assert charge["status"] == "succeeded" and asked == []


async def test_a_client_that_cannot_ask_leaves_it_to_the_operator(app, mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:  # no elicitation callback: the client declares no elicitation capability
        waiting = await call(client, "create_charge", **BIG)
        assert waiting["status"] == "requires_approval" and "approval threshold" in waiting["approval_reason"]
        assert await db.fetchval("SELECT count(*) FROM sandbox.payment_intents") == 0

        out = await paywarden(app, "approve", waiting["payment_id"], "--by", "alice")
        assert f"{waiting['payment_id']} approved by alice: now succeeded" in out
        paid = await call(client, "get_payment", payment_id=waiting["payment_id"])
    steps = [(e["from_status"], e["to_status"], e["actor"]) for e in paid["timeline"]]
    assert steps[:3] == [
        (None, "created", "agent"),
        ("created", "requires_approval", "agent"),
        ("requires_approval", "created", "operator"),
    ]
    assert steps[3][:2] == ("created", "succeeded")  # by the provider's answer or its webhook, whichever came first


async def test_the_operator_rejects(app, mcp) -> None:
    async with mcp() as client:
        waiting = await call(client, "create_charge", **BIG)
        await paywarden(app, "reject", waiting["payment_id"], "--by", "bob", "--reason", "not today")
        rejected = await call(client, "get_payment", payment_id=waiting["payment_id"])
        again = await paywarden(app, "approve", waiting["payment_id"], expect_failure=True)
    assert rejected["status"] == "canceled" and "rejected by operator bob: not today" in rejected["failure_reason"]
    assert "is canceled, not waiting for approval" in again


async def paywarden(app, *args: str, expect_failure: bool = False) -> str:
    code, out = await paywarden_command(app.settings.database_url, *args, port=str(app.settings.port))
    assert (code != 0) == expect_failure, out
    return out


async def test_approval_over_streamable_http(app, database_url: str, db: asyncpg.Connection) -> None:
    from tests.helpers import http_client, new_key

    trusted_client = await new_key(database_url, approval="client")
    callback, asked = answering("accept", {"approve": True})
    async with http_client(f"{app.base_url}/mcp", trusted_client, elicitation_callback=callback) as client:
        charge = await call(client, "create_charge", **{**BIG, "idempotency_key": "http-1"})
    assert charge["status"] == "succeeded" and len(asked) == 1
    first = await db.fetchval("SELECT reason FROM payment_audit ORDER BY id LIMIT 1")
    assert "approved by the person through the MCP client (client approval)" in first


async def test_a_client_that_says_yes_cannot_approve_for_an_operator_key(app, database_url: str, db) -> None:
    """The attack: an agent host whose elicitation callback always says yes. With a key whose charges an
    operator approves (the default), the charge waits for the operator and nobody is even asked."""
    from tests.helpers import http_client, new_key

    key = await new_key(database_url)
    callback, asked = answering("accept", {"approve": True})
    async with http_client(f"{app.base_url}/mcp", key, elicitation_callback=callback) as client:
        large = await call(client, "create_charge", **BIG)
        huge = await call(client, "create_charge", **{**BIG, "amount_minor": 90_000, "idempotency_key": "x2"})
    assert (large["status"], huge["status"]) == ("requires_approval", "requires_approval") and asked == []
    assert await db.fetchval("SELECT count(*) FROM sandbox.payment_intents") == 0
    held = [
        row["reason"]
        for row in await db.fetch("SELECT reason FROM payment_audit WHERE to_status = 'requires_approval' ORDER BY id")
    ]
    assert "an operator must approve it: this API key's charges are approved by an operator only" in held[0]
    assert "an operator must approve it: charges above 500.00 USD are approved by an operator only" in held[1]


async def test_above_the_operator_threshold_even_a_trusted_client_waits(mcp, db: asyncpg.Connection) -> None:
    callback, asked = answering("accept", {"approve": True})
    async with mcp(elicitation_callback=callback) as client:  # the local caller: client approval
        charge = await call(client, "create_charge", **{**BIG, "amount_minor": 60_000})
    assert charge["status"] == "requires_approval" and asked == []
    assert "above the approval threshold of 50.00 USD" in charge["approval_reason"]
    held = await db.fetchval("SELECT reason FROM payment_audit WHERE to_status = 'requires_approval'")
    assert "charges above 500.00 USD are approved by an operator only" in held


async def test_held_charges_expire_and_stop_counting(app, mcp, db: asyncpg.Connection) -> None:
    from server.reconciler import reconcile_once

    async with mcp() as client:  # no elicitation: held for an operator
        held = await call(client, "create_charge", **BIG)
    await db.execute("UPDATE payments SET updated_at = now() - interval '25 hours'")
    refused = await paywarden(app, "approve", held["payment_id"], expect_failure=True)
    assert "has expired" in refused
    report = await reconcile_once(app.services)
    assert report.expired == [held["payment_id"]]
    row = await db.fetchrow("SELECT status, failure_reason FROM payments")
    assert row["status"] == "canceled" and "expired" in row["failure_reason"]
    actor = await db.fetchval("SELECT actor FROM payment_audit ORDER BY id DESC LIMIT 1")
    assert actor == "reconciler"


async def test_a_burst_of_held_charges_for_one_customer_is_refused(mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        for n in range(5):
            assert (await call(client, "create_charge", **{**BIG, "idempotency_key": f"b{n}"}))["status"] == (
                "requires_approval"
            )
        sixth = await call_error(client, "create_charge", **{**BIG, "idempotency_key": "b5"})
        other = await call(client, "create_charge", **{**BIG, "idempotency_key": "o1", "customer_id": "someone"})
    assert "already has 5 charges waiting for approval" in sixth
    assert other["status"] == "requires_approval"
    assert await db.fetchval("SELECT count(*) FROM payments") == 6


async def test_approving_again_finishes_a_payment_whose_provider_call_failed(app, mcp) -> None:
    async with mcp() as client:
        waiting = await call(client, "create_charge", **BIG)
        gone = await paywarden_command(app.settings.database_url, "approve", waiting["payment_id"], port="1")
        assert gone[0] != 0  # nobody listens on port 1: the provider call fails after the approval was recorded
        assert (await call(client, "get_payment", payment_id=waiting["payment_id"]))["status"] == "created"
        out = await paywarden(app, "approve", waiting["payment_id"], "--by", "alice")
    assert f"{waiting['payment_id']} approved by alice: now succeeded" in out


async def test_approval_checks_the_budget_of_the_key_that_asked(app, database_url: str, db) -> None:
    """A held charge waits outside the key's window once a day has passed; approving it then must still
    fit the key's budget — and the held row records the key too."""
    from tests.helpers import http_client, new_key

    key = await new_key(database_url, budget_minor=10_000, budget_currency="USD")
    async with http_client(f"{app.base_url}/mcp", key) as client:
        held = await call(client, "create_charge", **{**BIG, "amount_minor": 6000})
        assert held["status"] == "requires_approval"
        await db.execute("UPDATE payments SET charged_at = now() - interval '25 hours'")
        for n in range(2):
            await call(client, "create_charge", **{**BIG, "customer_id": f"c{n}", "idempotency_key": f"k{n}",
                                                   "amount_minor": 5000})  # fmt: skip
    refused = await paywarden(app, "approve", held["payment_id"], expect_failure=True)
    assert "would take this API key over the 24-hour budget of 100.00 USD" in refused
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", held["payment_id"]) == "requires_approval"
    keys = await db.fetch("SELECT DISTINCT api_key_id FROM payment_audit WHERE payment_id = $1", held["payment_id"])
    assert len(keys) == 1 and keys[0]["api_key_id"] is not None
