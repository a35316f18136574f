"""The operator console over plain HTTP (what a browser without JavaScript does): pages, sessions, CSRF,
roles, tenants, the refund confirm step, the CSV export."""

from __future__ import annotations

import asyncpg

from tests.helpers import call, console_client, new_operator

BIG = {"customer_id": "cus_big", "idempotency_key": "big-1", "amount_minor": 12_000, "currency": "USD"}
PAGES = [
    "/console",
    "/console?days=30",
    "/console/payments",
    "/console/approvals",
    "/console/customers",
    "/console/inbox",
    "/console/keys",
    "/console/operators",
    "/console/tenants",
    "/console/activity",
]


async def test_every_page_reads_without_javascript(app, mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        paid = await call(client, "create_charge", customer_id="cus_a", idempotency_key="a", product_id="pro_monthly",
                          payment_method="pm_card_visa")  # fmt: skip
        held = await call(client, "create_charge", **BIG)
    password = await new_operator(app.services, "ada", "admin")
    async with console_client(app, "ada", password) as console:
        for path in [*PAGES, f"/console/payments/{paid['payment_id']}", f"/console/payments/{held['payment_id']}",
                     "/console/customer?tenant=default&id=cus_a"]:  # fmt: skip
            answer = await console.get(path)
            assert answer.status_code == 200, (path, answer.text[:2000])
            assert "<title>" in answer.text


async def test_the_overview_counts_per_day_status_and_currency(app, mcp, db: asyncpg.Connection) -> None:
    from server import overview

    async with mcp() as client:
        for n, (product, method) in enumerate([("day_pass", "pm_card_visa"), ("pro_monthly", "pm_card_visa"),
                                               ("image_studio_monthly", "pm_card_visa"),
                                               ("pro_monthly", "pm_card_chargeDeclined")]):  # fmt: skip
            await call(client, "create_charge", customer_id=f"c{n}", idempotency_key="k", product_id=product,
                       payment_method=method)  # fmt: skip
    await db.execute("UPDATE payments SET created_at = now() - interval '3 days' WHERE product_id = 'pro_monthly'")
    numbers = await overview.overview(app.services, None, 7)
    assert [day.payments for day in numbers.per_day][-4:] == [2, 0, 0, 2]
    assert [day.succeeded for day in numbers.per_day][-4:] == [1, 0, 0, 2]
    assert numbers.paid_per_day == {"EUR": [0, 0, 0, 0, 0, 0, 1500], "USD": [0, 0, 0, 2000, 0, 0, 300]}
    assert numbers.by_status == {"succeeded": 3, "failed": 1}
    assert [(t.currency, t.payments, t.paid_minor) for t in numbers.by_currency] == [("EUR", 1, 1500), ("USD", 3, 2300)]
