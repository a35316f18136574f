"""Evidence for a dispute, assembled from what the ledger knows of a real charge's history, and its
submission through Stripe's dispute update (audited as the operator)."""

from __future__ import annotations

import json
import time
from typing import Any

from server import inbox
from server.providers.stripe import event_from_payload
from server.services import open_services
from tests.helpers import (
    approve_everything,
    call,
    call_error,
    eventually,
    local_http,
    paywarden_command,
    quiet_settings,
    sent_to_sandbox,
)


async def _evidence(app: Any, *args: str) -> tuple[int, str]:
    return await paywarden_command(
        app.settings.database_url, "disputes", "evidence", *args, port=str(app.settings.port)
    )


def _json_of(said: str) -> dict:
    return json.loads(said[said.index('{\n  "dispute"') : said.rindex("}") + 1])


async def test_the_evidence_tells_the_charges_history_and_is_submitted_as_the_operator(mcp, app, db) -> None:
    async with mcp(elicitation_callback=approve_everything) as client:
        await call(
            client, "create_charge", customer_id="cus_ev", idempotency_key="e0", product_id="credits_100k",
            payment_method="pm_card_visa",
        )  # fmt: skip
        paid = await call(
            client, "create_charge", customer_id="cus_ev", idempotency_key="e1", product_id="pro_yearly",
            payment_method="pm_card_createDispute",
        )  # fmt: skip
        await call(
            client, "consume_credits", customer_id="cus_ev", feature="llm_tokens", quantity=300, idempotency_key="u"
        )
        dispute_id = await eventually(lambda: db.fetchval("SELECT id FROM disputes"))
        refused = await call_error(
            client, "refund_payment", payment_id=paid["payment_id"], idempotency_key="rf", amount_minor=1000
        )
    assert "is charged back" in refused  # so the evidence can say that no refund was given

    code, said = await _evidence(app, dispute_id, "--json")
    assert code == 0, said
    evidence = _json_of(said)
    fields, facts = evidence["fields"], evidence["facts"]
    assert evidence["dispute"]["dispute_id"] == dispute_id and facts["customer_id"] == "cus_ev"
    assert "Pro, 365 days" in fields["product_description"] and "200.00 USD" in fields["product_description"]
    assert [entry["to"] for entry in facts["timeline"]][:1] == ["created"]
    assert any("approved by the person" in (entry["reason"] or "") for entry in facts["approval"])
    assert "approved by the person" in fields["uncategorized_text"]
    assert "access to pro from" in fields["access_activity_log"]
    # the credits used came from another purchase (credits_100k): not service this payment delivered
    assert "llm_tokens" not in fields["access_activity_log"]
    assert fields["refund_refusal_explanation"] == "No refund was requested for this payment."
    assert fields["service_date"] == facts["paid_at"][:10]

    code, text = await _evidence(app, dispute_id)
    assert code == 0 and "[product_description]" in text and "Evidence due by" in text

    code, said = await _evidence(app, dispute_id, "--submit", "--by", "alice")
    assert code == 0, said
    (sent,) = await sent_to_sandbox(db, "POST", f"/v1/disputes/{dispute_id}")
    assert sent["params"]["submit"] == "true" and sent["params"]["evidence"] == fields
    assert sent["idempotency_key"].startswith(f"dispute-evidence-{dispute_id}-")
    audited = await db.fetchrow("SELECT actor, reason FROM dispute_audit WHERE action = 'evidence_submitted'")
    assert audited["actor"] == "operator" and "operator alice" in audited["reason"]
    assert await db.fetchval("SELECT evidence_submitted_at IS NOT NULL FROM disputes") is True
    await eventually(lambda: db.fetchval("SELECT status = 'under_review' FROM disputes"))
    code, again = await _evidence(app, dispute_id, "--submit", "--by", "alice")  # taken once, as by Stripe
    assert code == 1 and "the provider takes it once" in again, again
    assert len(await sent_to_sandbox(db, "POST", f"/v1/disputes/{dispute_id}")) == 1
    async with local_http(base_url=f"{app.base_url}/sandbox") as sandbox:  # the provider refuses it too
        refused = await sandbox.post(
            f"/v1/disputes/{dispute_id}", data={"evidence[uncategorized_text]": "more", "submit": "true"},
            headers={"Authorization": f"Bearer {app.services.sandbox.api_key}"},
        )  # fmt: skip
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "dispute_already_submitted"


async def test_evidence_is_staged_when_a_dispute_opens_if_asked(mcp, app, db, database_url) -> None:
    async with mcp() as client:
        paid = await call(
            client, "create_charge", customer_id="cus_st", idempotency_key="s1", product_id="pro_monthly",
            payment_method="pm_card_visa",
        )  # fmt: skip
        await call(client, "refund_payment", payment_id=paid["payment_id"], idempotency_key="rf", amount_minor=1000)
    dispute = {
        "id": "du_staged", "object": "dispute", "amount": 2000, "currency": "usd", "charge": "ch_x",
        "payment_intent": paid["provider_payment_id"], "reason": "fraudulent", "status": "needs_response",
        "evidence_details": {"due_by": int(time.time()) + 86_400},
    }  # fmt: skip
    event = {"id": "evt_staged", "object": "event", "type": "charge.dispute.created", "data": {"object": dispute}}
    async with open_services(quiet_settings(database_url, dispute_auto_evidence=True)) as staging:
        assert (await inbox.ingest(staging, event_from_payload(event))).outcome == "applied"
    row = await db.fetchrow("SELECT evidence, evidence_staged_at, evidence_submitted_at FROM disputes")
    staged = json.loads(row["evidence"])
    assert row["evidence_staged_at"] is not None and row["evidence_submitted_at"] is None
    assert "Pro, 30 days" in staged["fields"]["product_description"]
    assert "Refunds given for this payment: 10.00 USD (succeeded" in staged["fields"]["refund_refusal_explanation"]
    actions = [r["action"] for r in await db.fetch("SELECT action FROM dispute_audit ORDER BY id")]
    assert actions == ["opened", "evidence_staged"]
    assert await db.fetchval("SELECT count(*) FROM sandbox.requests WHERE path LIKE '/v1/disputes%'") == 0


async def test_an_unknown_dispute_is_said_plainly(app) -> None:
    code, said = await _evidence(app, "du_nope")
    assert code == 1 and "No dispute 'du_nope'" in said


async def test_credits_the_disputed_payment_bought_count_as_service_delivered(mcp, app, db) -> None:
    """The credits are used before the dispute is heard of (a dispute opened right away by the test card could
    hold them first, and the consume would be refused)."""
    async with mcp() as client:
        paid = await call(
            client, "create_charge", customer_id="cus_cr", idempotency_key="c1", product_id="credits_100k",
            payment_method="pm_card_visa",
        )  # fmt: skip
        await call(
            client, "consume_credits", customer_id="cus_cr", feature="llm_tokens", quantity=250, idempotency_key="u1"
        )
    dispute = {
        "id": "du_cr", "object": "dispute", "amount": paid["amount_minor"], "currency": "usd", "charge": "ch_x",
        "payment_intent": paid["provider_payment_id"], "reason": "fraudulent", "status": "needs_response",
        "evidence_details": {"due_by": int(time.time()) + 86_400},
    }  # fmt: skip
    event = {"id": "evt_cr", "object": "event", "type": "charge.dispute.created", "data": {"object": dispute}}
    assert (await inbox.ingest(app.services, event_from_payload(event))).outcome == "applied"
    dispute_id = "du_cr"
    code, said = await _evidence(app, dispute_id, "--json")
    assert code == 0, said
    assert "llm_tokens: 250 credits used in 1 uses" in _json_of(said)["fields"]["access_activity_log"]
