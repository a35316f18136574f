"""list_payments: newest first, filtered, keyset pages that neither skip nor repeat."""

from __future__ import annotations

from tests.helpers import call, call_error


async def test_pages_cover_every_payment_once_newest_first(app, mcp) -> None:
    async with mcp() as client:
        ids = []
        for n in range(7):
            method = "pm_card_chargeDeclined" if n % 3 == 0 else "pm_card_visa"
            charge = await call(
                client,
                "create_charge",
                customer_id="cus_list",
                idempotency_key=f"k{n}",
                amount_minor=100 + n,
                currency="EUR",
                payment_method=method,
            )
            ids.append(charge["payment_id"])
        await call(
            client,
            "create_charge",
            customer_id="someone_else",
            idempotency_key="k",
            amount_minor=100,
            currency="EUR",
            payment_method="pm_card_visa",
        )
        seen, cursor = [], None
        while True:
            page = await call(
                client, "list_payments", customer_id="cus_list", limit=3, **({"cursor": cursor} if cursor else {})
            )
            seen += [payment["payment_id"] for payment in page["payments"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        failed = await call(client, "list_payments", customer_id="cus_list", status="failed")
        bad = await call_error(client, "list_payments", customer_id="cus_list", cursor="not-a-cursor")
    assert seen == list(reversed(ids))
    assert [p["payment_id"] for p in failed["payments"]] == [ids[6], ids[3], ids[0]]
    assert "cursor is not one this listing returned" in bad


async def test_payments_arriving_between_pages_neither_shift_nor_repeat_the_pages(mcp, db) -> None:
    async with mcp() as client:
        for n in range(4):
            await call(
                client,
                "create_charge",
                customer_id="cus_k",
                idempotency_key=f"k{n}",
                amount_minor=100 + n,
                currency="EUR",
                description=f"item {n}",
            )
        await db.execute("UPDATE payments SET created_at = '2026-01-01T00:00:00Z'")  # all tied on created_at
        first = await call(client, "list_payments", customer_id="cus_k", limit=2)
        await call(
            client,
            "create_charge",
            customer_id="cus_k",
            idempotency_key="late",
            amount_minor=999,
            currency="EUR",
            description="late",
        )
        second = await call(client, "list_payments", customer_id="cus_k", limit=2, cursor=first["next_cursor"])
    ids = [p["payment_id"] for p in first["payments"] + second["payments"]]
    all_old = await db.fetch("SELECT id FROM payments WHERE description <> 'late' ORDER BY id DESC")
    assert ids == [row["id"] for row in all_old] and second["next_cursor"] is None
