"""Receipts: numbered per tenant without gaps in the transaction that moves a payment to succeeded, and a
printable page on an unguessable address."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from db import payments
from server.ledger import payment_machine
from tests.helpers import call, intent_event, local_http, signed, visible_text
from tests.helpers import post_webhook as post


async def test_a_paid_charge_has_a_receipt_page_showing_its_refunds(mcp, app) -> None:
    async with mcp() as client:
        paid = await call(
            client,
            "create_charge",
            customer_id="cus_rc",
            idempotency_key="rc1",
            product_id="pro_monthly",
            payment_method="pm_card_visa",
        )
        await call(client, "refund_payment", payment_id=paid["payment_id"], idempotency_key="rr", amount_minor=500)
        shown = await call(client, "get_payment", payment_id=paid["payment_id"])
    assert shown["receipt_number"] == 1
    url = shown["receipt_url"]
    assert url.startswith(f"{app.base_url}/receipts/") and len(url.rsplit("/", 1)[1]) >= 32
    async with local_http() as http:
        page = await http.get(url)
        guessed = await http.get(url[:-2] + "xx")
    text = visible_text(page.text)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "Default tenant" in text and "Receipt #1" in text and "20.00 USD" in text
    assert "Refunded: 5.00 USD" in text and "−5.00 USD" in text and paid["payment_id"] in text
    assert guessed.status_code == 404 and paid["payment_id"] not in guessed.text


async def test_fifty_concurrent_successes_number_receipts_without_gaps_or_duplicates(app, db) -> None:
    ids = await _processing_payments(db, "default", 50)
    other = await _processing_payments(db, "other", 3)
    bodies = [_succeeded(payment_id) for payment_id in ids + other]
    answers = await asyncio.gather(*(post(app, body, signed(body)) for body in bodies))
    assert {answer.json()["outcome"] for answer in answers} == {"applied"}
    numbers = await db.fetch("SELECT tenant_id, receipt_number FROM payments ORDER BY receipt_number")
    assert sorted(row["receipt_number"] for row in numbers if row["tenant_id"] == "default") == list(range(1, 51))
    assert sorted(row["receipt_number"] for row in numbers if row["tenant_id"] == "other") == [1, 2, 3]
    assert await db.fetchval("SELECT count(DISTINCT receipt_token) FROM payments") == 53


async def test_a_rolled_back_success_gives_its_number_back(services, db) -> None:
    first, second = await _processing_payments(db, "default", 2)

    async def succeed(payment_id: str, *, then_fail: bool) -> int | None:
        async with services.pool.acquire() as conn:
            async with conn.transaction():
                locked = await payments.lock(conn, payment_id, tenant_id=None)
                await payment_machine.apply(
                    conn, locked, payment_machine.Transition(to_status="succeeded", actor="webhook")
                )
                if then_fail:
                    await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # numbered now, then rolled back
                    raise RuntimeError("rolled back")
            return await conn.fetchval("SELECT receipt_number FROM payments WHERE id = $1", payment_id)

    with pytest.raises(RuntimeError):
        await succeed(first, then_fail=True)
    assert await succeed(second, then_fail=False) == 1
    assert await succeed(first, then_fail=False) == 2


async def _processing_payments(db: asyncpg.Connection, tenant_id: str, count: int) -> list[str]:
    await db.execute("INSERT INTO tenants (id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING", tenant_id)
    rows = await db.fetch(
        """
        INSERT INTO payments (id, tenant_id, customer_id, amount_minor, currency, provider, status, provider_payment_id)
        SELECT 'pay_' || md5($1 || n), $1, 'cus_many', 1000, 'USD', 'sandbox', 'processing', 'pi_' || md5($1 || n)
          FROM generate_series(1, $2) n
        RETURNING id
        """,
        tenant_id,
        count,
    )
    return [row["id"] for row in rows]


def _succeeded(payment_id: str) -> str:
    payment = {
        "payment_id": payment_id,
        "provider_payment_id": "pi_" + payment_id[4:],
        "amount_minor": 1000,
        "currency": "USD",
    }
    return intent_event("payment_intent.succeeded", payment, event_id=f"evt_{payment_id}")


async def test_numbering_a_receipt_never_makes_rows_referring_to_the_payment_wait(services, db) -> None:
    (payment_id,) = await _processing_payments(db, "default", 1)
    async with services.pool.acquire() as conn, conn.transaction():
        locked = await payments.lock(conn, payment_id, tenant_id=None)
        await conn.execute("UPDATE payments SET status = 'succeeded' WHERE id = $1", payment_id)
        await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the numbering a commit does, done now
        assert (await payments.get(conn, locked.id, tenant_id=None)).receipt_number == 1
        async with db.transaction():  # what a foreign key check of a row referring to the payment takes
            await db.execute("SET LOCAL lock_timeout = '1s'")
            assert await db.fetchval("SELECT id FROM payments WHERE id = $1 FOR KEY SHARE", payment_id)


async def test_a_success_holds_its_tenants_receipt_counter_only_while_it_commits(services, db) -> None:
    first, second = await _processing_payments(db, "default", 2)
    succeeded = payment_machine.Transition(to_status="succeeded", actor="webhook")
    async with services.pool.acquire() as slow, slow.transaction():
        await payment_machine.apply(slow, await payments.lock(slow, first, tenant_id=None), succeeded)
        async with services.pool.acquire() as quick:
            async with quick.transaction():  # a later success of the tenant does not wait for the open one
                await quick.execute("SET LOCAL lock_timeout = '1s'")
                await payment_machine.apply(quick, await payments.lock(quick, second, tenant_id=None), succeeded)
    numbers = await db.fetch("SELECT id, receipt_number FROM payments ORDER BY receipt_number")
    assert [(row["id"], row["receipt_number"]) for row in numbers] == [(second, 1), (first, 2)]


async def test_the_payment_succeeded_event_says_the_receipt_number_given_at_commit(app, db) -> None:
    ids = await _processing_payments(db, "default", 2)
    for payment_id in ids:
        body = _succeeded(payment_id)
        assert (await post(app, body, signed(body))).json()["outcome"] == "applied"
    rows = await db.fetch(
        """
        SELECT payload -> 'data' ->> 'payment_id' AS payment_id, (payload -> 'data' ->> 'receipt_number')::int AS number
          FROM outbox_events WHERE type = 'payment.succeeded'
        """
    )
    given = await db.fetch("SELECT id, receipt_number FROM payments WHERE id = ANY($1::text[])", ids)
    assert {(row["payment_id"], row["number"]) for row in rows} == {(row["id"], row["receipt_number"]) for row in given}
    assert sorted(row["number"] for row in rows) == [1, 2]
