"""The reconciliation report for finance: the sandbox's balance transactions (Stripe's fee model) matched
against the ledger; a charge made behind paywarden's back and an altered provider record are exactly the
problems found, and the totals add up."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg

from db.finance import LedgerMovement
from server import finance
from server.providers import stripe_objects
from tests.helpers import call, eventually, paywarden_command, sandbox_client


async def _charge(client: Any, customer: str, product_id: str, card: str = "pm_card_visa") -> dict:
    return await call(
        client, "create_charge", customer_id=customer, idempotency_key="k", product_id=product_id, payment_method=card
    )


async def _report(app: Any, *extra: str) -> tuple[int, str]:
    today = datetime.now(UTC).date().isoformat()
    args = ("report", "reconcile", "--from", today, "--to", today, *extra)
    return await paywarden_command(app.settings.database_url, *args, port=str(app.settings.port))


async def test_the_report_finds_exactly_the_two_problems_and_its_totals_add_up(mcp, app, db) -> None:
    async with mcp() as client:
        refunded_in_part = await _charge(client, "cus_a", "pro_monthly")
        refunded = await _charge(client, "cus_b", "day_pass")
        altered = await _charge(client, "cus_c", "image_studio_monthly")
        disputed = await _charge(client, "cus_d", "credits_100k", "pm_card_createDispute")
        kept = await _charge(client, "cus_e", "pro_monthly")
        await call(
            client, "refund_payment", payment_id=refunded_in_part["payment_id"], idempotency_key="r1", amount_minor=500
        )
        await call(client, "refund_payment", payment_id=refunded["payment_id"], idempotency_key="r2")
    dispute_id = await eventually(lambda: db.fetchval("SELECT id FROM disputes WHERE funds_withdrawn_at IS NOT NULL"))
    code, said = await paywarden_command(app.settings.database_url, "sandbox", "dispute", "close", dispute_id, "--lost")
    assert code == 0, said
    await eventually(lambda: db.fetchval("SELECT status = 'lost' FROM disputes"))
    behind = await sandbox_client(app).v1.payment_intents.create_async(
        {"amount": 777, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    await _alter_provider_amount(db, altered["provider_payment_id"], 1400)

    code, out = await _report(app, "--format", "json")
    report = json.loads(out[out.index('{\n  "period_from"') : out.rindex("}") + 1])
    assert code == 1, out
    (provider_only,) = report["provider_only"]
    assert provider_only["provider_id"] == behind.id and provider_only["provider_amount_minor"] == 777
    (mismatch,) = report["mismatches"]
    assert mismatch["ledger_id"] == altered["payment_id"] and mismatch["provider_amount_minor"] == 1400
    assert mismatch["ledger_amount_minor"] == 1500 and "amount differs" in mismatch["problem"]
    assert report["ledger_only"] == []
    matched = {(line["kind"], line["ledger_id"]) for line in report["matched"]}
    charges = [refunded_in_part, refunded, disputed, kept]
    assert {("charge", payment["payment_id"]) for payment in charges} <= matched
    assert ("dispute", dispute_id) in matched and len([k for k, _ in matched if k == "refund"]) == 2
    totals = {total["currency"]: total for total in report["totals"]}
    usd, eur = totals["USD"], totals["EUR"]
    assert usd["gross_minor"] == 2000 + 300 + 1000 + 2000 + 777
    assert usd["refunds_minor"] == -800 and usd["disputes_minor"] == -1000
    assert usd["fees_minor"] == sum(_fee(amount) for amount in (2000, 300, 1000, 2000, 777)) + 1500
    for total in (usd, eur):
        gross, back, disputes, fees = (total[f"{n}_minor"] for n in ("gross", "refunds", "disputes", "fees"))
        assert gross + back + disputes - fees == total["net_minor"]
    assert eur["gross_minor"] == 1400

    code, table = await _report(app)
    assert code == 1 and "At the provider, not in the ledger: 1" in table and "mismatches: 1" in table
    code, csv_text = await _report(app, "--format", "csv", "--tenant", "default")
    assert code == 1 and csv_text.splitlines()[0].startswith("section,kind,currency,provider_txn_id")


async def test_a_period_with_nothing_wrong_exits_zero(mcp, app) -> None:
    async with mcp() as client:
        await _charge(client, "cus_ok", "pro_monthly")
    code, out = await _report(app)
    assert code == 0, out
    assert "Matched: 1" in out


def _fee(amount: int) -> int:
    return (amount * 29 + 500) // 1000 + 30


async def _alter_provider_amount(db: asyncpg.Connection, intent_id: str, amount: int) -> None:
    """The provider's record of a charge changes under paywarden (what a reconciliation exists to catch)."""
    changed = await db.execute(
        """
        UPDATE sandbox.balance_transactions
           SET object = object || jsonb_build_object('amount', $2::int, 'net', $2::int - (object->>'fee')::int)
         WHERE private->>'payment_intent' = $1 AND object->>'type' = 'charge'
        """,
        intent_id,
        amount,
    )
    assert changed == "UPDATE 1"


async def test_the_stripe_adapter_reads_every_page_of_balance_transactions(app, db) -> None:
    await db.execute(
        """
        INSERT INTO sandbox.balance_transactions (id, source, created, object, private)
        SELECT 'txn_page' || n, 'ch_page' || n, extract(epoch FROM now())::bigint - n,
               jsonb_build_object('id', 'txn_page' || n, 'object', 'balance_transaction', 'amount', 100, 'fee', 33,
                                  'net', 67, 'currency', 'usd', 'type', 'charge', 'reporting_category', 'charge',
                                  'source', 'ch_page' || n, 'created', extract(epoch FROM now())::bigint - n),
               '{}'::jsonb
          FROM generate_series(1, 230) n
        """
    )
    now = int(datetime.now(UTC).timestamp())
    found = await app.services.provider.balance_movements(now - 3600, now + 60)
    assert len(found) == 230 and len({movement.provider_txn_id for movement in found}) == 230
    assert {(m.kind, m.amount_minor, m.fee_minor, m.currency) for m in found} == {("charge", 100, 33, "USD")}
    assert await app.services.provider.balance_movements(now - 3600, now - 3000) == []


async def test_with_a_tenant_other_tenants_money_is_left_out(mcp, app, db) -> None:
    async with mcp() as client:
        mine = await _charge(client, "cus_t1", "pro_monthly")
        await call(client, "refund_payment", payment_id=mine["payment_id"], idempotency_key="r1")
    await eventually(lambda: db.fetchval("SELECT status = 'succeeded' FROM refunds"))
    code, out = await paywarden_command(app.settings.database_url, "tenants", "create", "other")
    assert code == 0, out
    code, out = await _report(app, "--tenant", "other", "--format", "json")
    report = json.loads(out[out.index('{\n  "period_from"') : out.rindex("}") + 1])
    assert code == 0, out
    assert report["matched"] == report["provider_only"] == report["ledger_only"] == report["totals"] == []
    code, out = await _report(app, "--tenant", "default")
    assert code == 0 and "Matched: 2" in out and mine["payment_id"] in out
    code, out = await _report(app, "--tenant", "nobody")
    assert code != 0 and "There is no tenant 'nobody'" in out and "Traceback" not in out


async def test_a_date_out_of_range_is_a_clear_error(app) -> None:
    args = ("--from", "2026-01-01", "--to", "9999-12-31")
    for command in (("report", "reconcile", *args), ("export", "payments", *args)):
        code, out = await paywarden_command(app.settings.database_url, *command)
        assert code != 0 and "'9999-12-31' is not a date" in out and "Traceback" not in out, out


def test_a_charge_settled_in_another_currency_is_compared_in_its_own() -> None:
    """Stripe's balance transaction is in the account's settlement currency; its source is the payment's."""
    txn = {
        "id": "txn_1", "object": "balance_transaction", "type": "charge", "reporting_category": "charge",
        "amount": 2150, "fee": 93, "net": 2057, "currency": "usd", "created": 1,
        "source": {"id": "ch_1", "object": "charge", "amount": 2000, "currency": "eur", "payment_intent": "pi_1"},
    }  # fmt: skip
    movement = stripe_objects.balance_movement(txn)
    assert (movement.amount_minor, movement.currency, movement.net_minor) == (2150, "USD", 2057)
    assert (movement.source_amount_minor, movement.source_currency) == (2000, "EUR")
    recorded = LedgerMovement(
        kind="charge", ledger_id="pay_1", payment_id="pay_1", tenant_id="default", provider_id="pi_1",
        amount_minor=2000, currency="EUR", status="succeeded", at=datetime.now(UTC),
    )  # fmt: skip
    report = finance._match([movement], [recorded], [], [], None)
    assert len(report["matched"]) == 1 and report["totals"][0].currency == "USD"
    report = finance._match([movement], [replace(recorded, amount_minor=1999)], [], [], None)
    assert report["mismatches"][0].problem == "amount differs: provider 2000, ledger 1999"
