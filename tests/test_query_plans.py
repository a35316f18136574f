"""Every query of the hot paths, the reconciler and the spend limits is an index lookup on big tables.

On a generated set (benchmarks/big_tables.py, a few thousand customers with their payments, audit rows,
entitlements, credit lots and ledgers, and one customer with a long history), each operation runs through
the real services on connections where PostgreSQL's auto_explain records the plan of every statement:
the ones paywarden sends, the ones inside its SQL functions, and the foreign-key and trigger queries
they cause. No plan may read a big table whole (a Seq Scan); the benchmark `big_tables` measures the
same paths at 1,000,000 customers.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from benchmarks.big_tables import DEEP_CUSTOMER, generate
from db.pool import create_pool
from server import charges, credits, customers, entitlements, inbox, payments, receipts, reconciler, refunds
from server.charges import ChargeInput
from server.refunds import RefundInput
from server.services import Services
from tests.helpers import LOCAL, advance, intent_event, signed

CUSTOMERS = 3000
BIG_TABLES = frozenset({
    "payments", "payment_audit", "idempotency_keys", "entitlements",
    "credit_accounts", "credit_lots", "credit_ledger", "credit_operations",
})  # fmt: skip
"""What the generator fills; small tables (tenants, keys, the inbox here) are rightly read whole."""
PASSED_OVER = 100
"""Rows an index walk may look at and drop: a customer's few rows, never a table's thousands."""


class Plans:
    """The plans auto_explain reported, as (statement, plan tree)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def listen(self, _conn: asyncpg.Connection, message: asyncpg.PostgresLogMessage) -> None:
        text = message.message
        if "plan:" in text:
            explained = json.loads(text.split("plan:", 1)[1])
            self.seen.append((explained["Query Text"], explained["Plan"]))

    def whole_table_reads(self) -> list[str]:
        """Plans that read a big table whole, or walk an index past more rows than they keep."""
        return [
            f"{node['Node Type']} on {node['Relation Name']} ({node.get('Rows Removed by Filter', 0)} rows"
            f" passed over) by: {' '.join(query.split())[:300]}"
            for query, plan in self.seen
            for node in _nodes(plan)
            if node.get("Relation Name") in BIG_TABLES
            and (node["Node Type"] == "Seq Scan" or node.get("Rows Removed by Filter", 0) > PASSED_OVER)
        ]

    def statements(self) -> set[str]:
        return {" ".join(query.split()) for query, _ in self.seen}


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.fixture
async def explained(app, owner_database_url: str) -> AsyncIterator[tuple[Services, Plans]]:
    """The app's services on a generated set, over a pool whose connections report every plan."""
    await generate(owner_database_url, CUSTOMERS, say=lambda _: None)
    plans = Plans()

    async def report_plans(conn: asyncpg.Connection) -> None:  # on each acquire: a release drops listeners
        await conn.execute(
            "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_format = json;"
            " SET auto_explain.log_analyze = on; SET auto_explain.log_timing = off;"
            " SET auto_explain.log_nested_statements = on; SET auto_explain.log_level = notice;"
            " SET client_min_messages = notice"
        )
        conn.add_log_listener(plans.listen)

    pool = await create_pool(owner_database_url, setup=report_plans)
    try:
        yield dataclasses.replace(app.services, pool=pool), plans
    finally:
        await pool.close()


pytestmark = pytest.mark.filterwarnings("ignore:.*active log listener")  # the plan listener, dropped on release


async def test_hot_paths_read_no_big_table_whole(explained) -> None:
    services, plans = explained
    await entitlements.check(services, LOCAL, "cus_g77", "pro", 1)
    await entitlements.check(services, LOCAL, "cus_g78", "llm_tokens", 10)
    await entitlements.check(services, LOCAL, "nobody", "pro", 1)
    await payments.details(services, LOCAL, "pay_g77")
    page = await payments.page(services, LOCAL, DEEP_CUSTOMER, limit=50)
    await payments.page(services, LOCAL, DEEP_CUSTOMER, limit=50, cursor=page.next_cursor)
    await customers.profile(services, LOCAL.tenant_id, DEEP_CUSTOMER)  # the console's page: get_customer's view too
    await credits.consume(services, LOCAL, "cus_g77", "llm_tokens", 5, "plan-consume")
    await credits.consume(services, LOCAL, "cus_g77", "llm_tokens", 5, "plan-consume")  # a replay
    held = await credits.reserve(services, LOCAL, "cus_g79", "llm_tokens", 20, "plan-reserve", 60)
    await credits.settle(services, LOCAL, held.reservation_id, 7)
    assert plans.whole_table_reads() == []
    assert any("consume_credits" in statement for statement in plans.statements())
    assert any("FROM credit_lots" in statement for statement in plans.statements())  # inside the functions


async def test_charges_refunds_webhooks_and_the_reconciler_read_no_big_table_whole(app, explained) -> None:
    services, plans = explained
    paid = await charges.charge(services, _charge("cus_g80", "plan-paid", "pm_card_visa"))
    await charges.charge(services, _charge("cus_g80", "plan-paid", "pm_card_visa"))  # a replay
    await refunds.refund(services, RefundInput(payment_id=paid.payment_id, idempotency_key="r", amount_minor=500,
                                               caller=LOCAL))  # fmt: skip
    waiting = await charges.charge(services, _charge("cus_g81", "plan-3ds", "pm_card_authenticationRequired"))
    assert waiting.status == "requires_action"
    body = intent_event("payment_intent.succeeded", waiting.model_dump(), event_id="evt_plan_1")
    event = services.provider.verify_webhook(body.encode(), signed(body)["Stripe-Signature"])
    assert (await inbox.ingest(services, event)).outcome == "applied"
    await reconciler.reconcile_once(services)
    assert plans.whole_table_reads() == []
    statements = plans.statements()
    assert any("payment_audit" in statement for statement in statements)
    assert any("idempotency_keys" in statement for statement in statements)


def _charge(customer: str, key: str, payment_method: str) -> ChargeInput:
    return ChargeInput(
        customer_id=customer, idempotency_key=key, product_id="pro_monthly", payment_method=payment_method, caller=LOCAL
    )


async def test_disputes_and_receipts_read_no_big_table_whole(app, explained) -> None:
    services, plans = explained
    paid = await charges.charge(services, _charge("cus_g82", "plan-disputed", "pm_card_visa"))
    for event_type, status in (("charge.dispute.created", "needs_response"), ("charge.dispute.closed", "won")):
        body = json.dumps({
            "id": f"evt_plan_{status}", "object": "event", "type": event_type,
            "data": {"object": {
                "id": "du_plan", "object": "dispute", "amount": 2000, "currency": "usd", "charge": "ch_plan",
                "payment_intent": paid.provider_payment_id, "reason": "fraudulent", "status": status,
            }},
        })  # fmt: skip
        event = services.provider.verify_webhook(body.encode(), signed(body)["Stripe-Signature"])
        assert (await inbox.ingest(services, event)).outcome == "applied"
    shown = await payments.details(services, LOCAL, paid.payment_id)
    assert shown.disputes[0].status == "won" and shown.receipt_url
    await customers.details(services, LOCAL, "cus_g82")
    await receipts.receipt(services, shown.receipt_url.rsplit("/", 1)[1])
    assert plans.whole_table_reads() == []
    assert any("receipt_counters" in statement for statement in plans.statements())


async def test_subscriptions_read_no_big_table_whole(app, explained) -> None:
    from server import subscriptions

    services, plans = explained
    request = subscriptions.charge_input(LOCAL, "cus_g83", "pro_ai_monthly", "plan-sub", "pm_card_visa")
    started = await subscriptions.start(services, request)
    await subscriptions.start(services, request)  # a replay
    await advance(app, 32)
    await subscriptions.reconcile_quiet(services, quiet_seconds=0)
    await entitlements.check(services, LOCAL, "cus_g83", "pro", 1)
    await entitlements.check(services, LOCAL, "cus_g83", "llm_tokens", 10)
    await subscriptions.details(services, LOCAL, started.subscription_id)
    await subscriptions.cancel(services, LOCAL, started.subscription_id, at_period_end=False)
    assert plans.whole_table_reads() == []
    assert any("FROM subscriptions" in statement for statement in plans.statements())
