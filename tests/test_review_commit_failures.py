"""Review regression: a success whose receipt numbering fails at COMMIT (the deferred trigger of 0114/0116)
must be handled like any other failure to apply an event: kept as failed, retried, visible to operators."""

from __future__ import annotations

import asyncpg
import pytest

from tests.helpers import call, intent_event, signed
from tests.helpers import post_webhook as post


@pytest.fixture
async def payment(mcp) -> dict:
    async with mcp() as client:
        return await call(client, "create_charge", customer_id="cus_1", idempotency_key="k", product_id="day_pass")


async def test_a_success_whose_numbering_fails_at_commit_is_kept_as_failed(
    app, db: asyncpg.Connection, payment
) -> None:
    # Any error raised by the deferred trigger at COMMIT (here a constraint refusing every receipt).
    await db.execute("ALTER TABLE receipts ADD CONSTRAINT review_refuse CHECK (number < 0) NOT VALID")
    try:
        body = intent_event("payment_intent.succeeded", payment, event_id="evt_commit1")
        answer = await post(app, body, signed(body))
        stored = await db.fetchrow("SELECT outcome, last_error FROM webhook_events WHERE event_id = 'evt_commit1'")
    finally:
        await db.execute("ALTER TABLE receipts DROP CONSTRAINT review_refuse")
    assert answer.status_code == 500
    assert stored is not None, f"event not kept at all (answer {answer.status_code}: {answer.text[:200]})"
    assert stored["outcome"] == "failed"
