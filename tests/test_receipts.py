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
        async with services.pool.acquire() as conn, conn.transaction():
            locked = await payments.lock(conn, payment_id, tenant_id=None)
            moved = await payment_machine.apply(
                conn, locked, payment_machine.Transition(to_status="succeeded", actor="webhook")
            )
            if then_fail:
                raise RuntimeError("rolled back")
            return moved.payment.receipt_number

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
        assert (await payments.number_receipt(conn, locked)).receipt_number == 1
        async with db.transaction():  # what a foreign key check of a row referring to the payment takes
            await db.execute("SET LOCAL lock_timeout = '1s'")
            assert await db.fetchval("SELECT id FROM payments WHERE id = $1 FOR KEY SHARE", payment_id)
