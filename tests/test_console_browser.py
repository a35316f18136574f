"""The operator console in a real browser: headless Chromium (Debian's package) driven by Playwright, against
an in-process `paywarden up` on a real database."""

from __future__ import annotations

import asyncio
import csv
import io
import re

import asyncpg
from mcp import Client
from playwright.async_api import Page, expect

from server import inbox, tenants
from tests.helpers import OWN_PASSWORD, call, intent_event, new_operator, post_webhook, sign_in, signed
from tools.server import build_server

HELD = {"customer_id": "cus_big", "idempotency_key": "big-1", "amount_minor": 12_000, "currency": "USD",
        "description": "GPU hours", "payment_method": "pm_card_visa"}  # fmt: skip
PAID = {"customer_id": "cus_paid", "idempotency_key": "paid-1", "product_id": "pro_monthly",
        "payment_method": "pm_card_visa"}  # fmt: skip


async def csrf_of(page: Page) -> str:
    return await page.locator("input[name=csrf_token]").first.input_value()


async def test_sign_in(app, page: Page) -> None:
    password = await new_operator(app.services, "ada", "viewer")
    await page.goto(f"{app.base_url}/console/payments")
    assert page.url.startswith(f"{app.base_url}/console/sign-in")  # not signed in: sent to sign in first

    await page.get_by_label("Name").fill("ada")
    await page.get_by_label("Password").fill("not her password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("Wrong name or password.")

    await page.get_by_label("Name").fill("ada")
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Choose your password")).to_be_visible()  # a one-time password
    await page.get_by_label("Current password").fill(password)
    await page.get_by_label("New password", exact=True).fill(OWN_PASSWORD)
    await page.get_by_label("New password again").fill(OWN_PASSWORD)
    await page.get_by_role("button", name="Set password").click()
    await expect(page.get_by_role("heading", name="Payments")).to_be_visible()  # back where she was going
    await expect(page.get_by_text("ada · viewer")).to_be_visible()

    cookie = next(c for c in await page.context.cookies() if c["name"] == "paywarden_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("status")).to_have_text("You are signed out.")
    await page.goto(f"{app.base_url}/console")
    assert page.url.startswith(f"{app.base_url}/console/sign-in")


async def test_a_held_charge_is_approved_in_the_console_and_moves_on(app, mcp, page: Page, db) -> None:
    async with mcp() as client:
        held = await call(client, "create_charge", **HELD)
    assert held["status"] == "requires_approval"
    await sign_in(page, app.base_url, "sam", await new_operator(app.services, "sam", "support"))

    await page.get_by_role("link", name="Approvals").click()
    row = page.locator(f"#row-{held['payment_id']}")
    await expect(row).to_contain_text("it is above the approval threshold of 50.00 USD")
    await expect(row).to_contain_text("120.00 USD")
    async with page.expect_request(f"**/payments/{held['payment_id']}/approve") as sent:
        await row.get_by_role("button", name="Approve").click()
    await expect(row).to_contain_text(f"{held['payment_id']} approved by sam: now succeeded")  # swapped in place
    assert page.url == f"{app.base_url}/console/approvals"
    request = await sent.value
    assert request.headers.get("hx-request") == "true" and request.headers.get("x-csrf-token") == await csrf_of(page)

    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", held["payment_id"]) == "succeeded"
    approval = await db.fetchrow(
        "SELECT actor, reason FROM payment_audit WHERE payment_id = $1 AND from_status = 'requires_approval'",
        held["payment_id"],
    )
    assert dict(approval) == {"actor": "operator", "reason": "approved by operator sam"}
    await page.reload()
    await expect(page.get_by_text("Nothing waits for approval.")).to_be_visible()


async def test_a_refund_from_the_payment_page(app, mcp, page: Page, db) -> None:
    async with mcp() as client:
        paid = await call(client, "create_charge", **PAID)
    await sign_in(page, app.base_url, "sam", await new_operator(app.services, "sam", "support"))
    await page.goto(f"{app.base_url}/console/payments/{paid['payment_id']}")

    await page.get_by_label("Amount to refund").fill("5.00")
    await page.get_by_label("Reason").fill("customer asked")
    await page.get_by_role("button", name="Refund…").click()
    await expect(page.get_by_role("heading", name="Refund 5.00 USD?")).to_be_visible()  # the confirm step
    assert await db.fetchval("SELECT count(*) FROM refunds") == 0  # nothing refunded before the confirmation

    confirm = page.locator("form", has=page.get_by_role("button", name="Yes, refund 5.00 USD"))
    fields = {name: await confirm.locator(f"input[name={name}]").input_value()
              for name in ("csrf_token", "idempotency_key", "amount", "reason")}  # fmt: skip
    await page.get_by_role("button", name="Yes, refund 5.00 USD").click()
    await expect(page.get_by_role("status")).to_contain_text("of 5.00 USD: succeeded")
    await expect(page.locator("h1 .status")).to_have_text("partially_refunded")
    again = await page.request.post(f"{app.base_url}/console/payments/{paid['payment_id']}/refund/confirm", form=fields)
    assert "already submitted: that refund was made once, not again" in await again.text()  # a double submit

    refund = await db.fetchrow(
        "SELECT amount_minor, reason, status FROM refunds WHERE payment_id = $1", paid["payment_id"]
    )
    assert dict(refund) == {"amount_minor": 500, "reason": "customer asked", "status": "succeeded"}
    assert await db.fetchval("SELECT count(*) FROM refunds") == 1
    requested = await db.fetchrow(
        "SELECT actor, reason FROM payment_audit WHERE payment_id = $1 AND reason LIKE 'refund % requested%'",
        paid["payment_id"],
    )
    assert requested["actor"] == "operator" and "requested by operator sam: customer asked" in requested["reason"]


async def test_a_failed_inbox_event_is_replayed(app, mcp, page: Page, db, monkeypatch) -> None:
    async with mcp() as client:
        waiting = await call(client, "create_charge", customer_id="cus_x", idempotency_key="k", product_id="day_pass")
    real_apply = inbox._apply

    async def broken(conn, provider, event, actor, tenant_id, *locked):
        raise RuntimeError("handler bug")

    monkeypatch.setattr(inbox, "_apply", broken)
    body = intent_event("payment_intent.processing", waiting, event_id="evt_broken")
    assert (await post_webhook(app, body, signed(body))).status_code == 500
    monkeypatch.setattr(inbox, "_apply", real_apply)  # the bug is fixed

    await sign_in(page, app.base_url, "sam", await new_operator(app.services, "sam", "support"))
    await page.get_by_role("link", name="Webhook inbox").click()
    problem = page.locator("tr.problem", has_text="evt_broken")
    await expect(problem).to_contain_text("failed")
    await expect(problem).to_contain_text("RuntimeError: handler bug")
    await problem.get_by_role("link", name="evt_broken").click()
    await expect(page.locator("pre.body")).to_contain_text('"type": "payment_intent.processing"')  # the stored body
    await page.get_by_role("button", name="Replay").click()
    await expect(page.get_by_role("status")).to_have_text("Replayed evt_broken: applied.")

    assert await db.fetchval("SELECT outcome FROM webhook_events WHERE event_id = 'evt_broken'") == "applied"
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", waiting["payment_id"]) == "processing"
    audit = await db.fetchrow("SELECT operator, via, action FROM operator_audit WHERE subject = 'evt_broken'")
    assert dict(audit) == {"operator": "sam", "via": "console", "action": "webhook.replay"}


async def test_the_csv_export_matches_the_database(app, mcp, page: Page, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        for n, product in enumerate(["pro_monthly", "day_pass", "image_studio_monthly", "pro_monthly"]):
            formula = f"=cmd|' /C calc'!A{n}" if n == 3 else None
            await call(client, "create_charge", customer_id=f"cus_{n}", idempotency_key="k", product_id=product,
                       description=formula, payment_method="pm_card_visa")  # fmt: skip
    await sign_in(page, app.base_url, "vic", await new_operator(app.services, "vic", "viewer"))
    await page.goto(f"{app.base_url}/console/payments?currency=USD")
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="Export CSV").click()
    download = await downloading.value
    saved = await download.path()
    exported = list(csv.reader(io.StringIO(await asyncio.to_thread(saved.read_text, encoding="utf-8"))))

    rows = await db.fetch(
        """
        SELECT id, tenant_id, customer_id, status, amount_minor, currency, refunded_minor, product_id, description,
               api_key_id, provider, provider_payment_id, created_at, updated_at, approval_reason, failure_reason
          FROM payments WHERE currency = 'USD' ORDER BY created_at DESC, id DESC
        """
    )
    assert exported[0][:6] == ["payment_id", "tenant_id", "customer_id", "status", "amount_minor", "currency"]
    assert len(exported) == 1 + len(rows) == 4  # the EUR payment is filtered out
    for line, row in zip(exported[1:], rows, strict=True):
        assert line[0] == row["id"] and line[2] == row["customer_id"] and line[3] == row["status"]
        assert int(line[4]) == row["amount_minor"] and line[5] == row["currency"] and line[7] == row["product_id"]
        assert line[12] == row["created_at"].isoformat()
    formula = next(line for line in exported if line[8].startswith("'"))
    assert formula[8] == "'=cmd|' /C calc'!A3"  # a spreadsheet must not run what an agent wrote


async def test_a_viewer_sees_no_actions_and_a_forged_post_is_refused(app, mcp, page: Page, db) -> None:
    async with mcp() as client:
        held = await call(client, "create_charge", **HELD)
        paid = await call(client, "create_charge", **PAID)
    await sign_in(page, app.base_url, "vic", await new_operator(app.services, "vic", "viewer"))
    for path in (f"/console/payments/{held['payment_id']}", f"/console/payments/{paid['payment_id']}",
                 "/console/approvals"):  # fmt: skip
        await page.goto(app.base_url + path)
        await expect(page.locator("main")).to_contain_text(held["payment_id"] if "approvals" in path else "Timeline")
        assert await page.get_by_role("button", name=re.compile("Approve|Reject|Refund")).count() == 0
    await page.goto(f"{app.base_url}/console/inbox")
    assert await page.get_by_role("link", name="API keys").count() == 0

    forged = await page.request.post(
        f"{app.base_url}/console/payments/{held['payment_id']}/approve", form={"csrf_token": await csrf_of(page)}
    )
    assert forged.status == 403 and "may not do this" in await forged.text()
    refund = await page.request.post(
        f"{app.base_url}/console/payments/{paid['payment_id']}/refund/confirm",
        form={"csrf_token": await csrf_of(page), "idempotency_key": "forged"},
    )
    assert refund.status == 403
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", held["payment_id"]) == "requires_approval"
    assert await db.fetchval("SELECT count(*) FROM refunds") == 0


async def test_a_request_without_the_csrf_token_is_refused(app, mcp, page: Page, db) -> None:
    async with mcp() as client:
        held = await call(client, "create_charge", **HELD)
    await sign_in(page, app.base_url, "sam", await new_operator(app.services, "sam", "support"))
    approve = f"{app.base_url}/console/payments/{held['payment_id']}/approve"
    for form in ({}, {"csrf_token": "not-the-token"}):
        refused = await page.request.post(approve, form=form)
        assert refused.status == 403 and "security token is missing or wrong" in await refused.text()
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", held["payment_id"]) == "requires_approval"

    accepted = await page.request.post(approve, form={"csrf_token": await csrf_of(page)})  # the same, with it
    assert accepted.status == 200
    assert await db.fetchval("SELECT status FROM payments WHERE id = $1", held["payment_id"]) == "succeeded"


async def test_a_tenants_operator_cannot_open_another_tenants_payment(app, page: Page) -> None:
    for tenant in ("tenant-a", "tenant-b"):
        await tenants.create(app.services, tenant)
    async with Client(build_server(app.services, local_tenant="tenant-b")) as client:
        theirs = await call(client, "create_charge", **PAID)
    async with Client(build_server(app.services, local_tenant="tenant-a")) as client:
        ours = await call(client, "create_charge", **PAID)
    await sign_in(page, app.base_url, "ann", await new_operator(app.services, "ann", "admin", tenant_id="tenant-a"))

    opened = await page.goto(f"{app.base_url}/console/payments/{theirs['payment_id']}")
    assert opened is not None and opened.status == 404
    await expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    opened = await page.goto(f"{app.base_url}/console/payments/{ours['payment_id']}")
    assert opened is not None and opened.status == 200
    await page.goto(f"{app.base_url}/console/payments")
    await expect(page.locator("table.payments")).to_contain_text(ours["payment_id"])
    await expect(page.locator("table.payments")).not_to_contain_text(theirs["payment_id"])
