"""Render a screenshot of each page of the operator console to docs/console/*.png.

    uv run python docs/console/screenshots.py            # an embedded PostgreSQL in a temporary folder
    uv run python docs/console/screenshots.py --server postgresql://postgres@127.0.0.1:5432/postgres

It starts what `paywarden up` runs, in this process, on a scratch database (created and dropped), fills it with
a small made-up history (two tenants, payments of every kind over two weeks, a refund, credits, a payment held
for approval, webhook problems, a reconciler pass), signs in as a platform admin in headless Chromium (Debian's
`chromium`, driven by Playwright) and saves each page at 1280 px, and the overview and a payment at phone width.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import stripe
import uvicorn
from mcp import Client
from playwright.async_api import Page, async_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from db.migrate import migrate_url  # noqa: E402
from server import api_keys, charges, operators, reconciler, tenants, webhook_delivery, webhook_endpoints  # noqa: E402
from server import customers as customer_records  # noqa: E402
from server.charges import ChargeInput  # noqa: E402
from server.config import Settings  # noqa: E402
from server.embedded import embedded_database_url  # noqa: E402
from server.services import Services, open_services  # noqa: E402
from tools.server import build_server  # noqa: E402
from webapp.app import build_webapp  # noqa: E402

OUT = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
]
WEBHOOK_SECRET = "whsec_screenshots"
PASSWORD = "screenshots are worth a thousand words"


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@asynccontextmanager
async def scratch_database(server: str | None) -> AsyncIterator[str]:
    folder = None
    if server is None:
        folder = Path(tempfile.mkdtemp(prefix="paywarden-screens-"))
        server = embedded_database_url(folder / "pgdata")
    name = f"paywarden_screens_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(with_database(server, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = with_database(server, name)
        await migrate_url(url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@asynccontextmanager
async def serving(services: Services, sock: socket.socket) -> AsyncIterator[None]:
    config = uvicorn.Config(build_webapp(services, mcp=build_server(services)), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn's own flag
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


async def charge(services: Services, tenant: str, **arguments: object) -> dict:
    async with Client(build_server(services, local_tenant=tenant)) as client:
        result = await client.call_tool("create_charge", arguments)
    assert not result.is_error, result.content
    return result.structured_content or {}


async def tool(services: Services, tenant: str, name: str, **arguments: object) -> dict:
    async with Client(build_server(services, local_tenant=tenant)) as client:
        result = await client.call_tool(name, arguments)
    assert not result.is_error, result.content
    return result.structured_content or {}


async def seed(services: Services, database_url: str) -> dict[str, str]:
    """A small made-up history; returns ids worth showing."""
    await tenants.create(services, "acme", "Acme Robotics")
    shown: dict[str, str] = {}
    methods = ["pm_card_visa"] * 5 + ["pm_card_chargeDeclined", None]
    products = ["pro_monthly", "day_pass", "credits_100k", "image_studio_monthly", "pro_yearly"]
    for n in range(42):
        tenant = "acme" if n % 3 == 0 else "default"
        customer = f"cus_{['ada', 'grace', 'alan', 'edsger', 'barbara'][n % 5]}"
        paid = await charge(
            services, tenant, customer_id=customer, idempotency_key=f"seed-{n}", product_id=products[n % len(products)],
            payment_method=methods[n % len(methods)],
        )  # fmt: skip
        shown.setdefault(f"{paid['status']}", paid["payment_id"])
    big = await charge(services, "default", customer_id="cus_ada", idempotency_key="seed-big", amount_minor=45_000,
                       currency="USD", description="GPU cluster, 1 week", payment_method="pm_card_visa")  # fmt: skip
    shown["held"] = big["payment_id"]
    await charge(services, "acme", customer_id="cus_grace", idempotency_key="seed-big-2", amount_minor=32_000,
                 currency="EUR", description="Annual support plan", payment_method="pm_card_visa")  # fmt: skip
    credits = await charge(services, "default", customer_id="cus_alan", idempotency_key="seed-credits",
                           product_id="credits_100k", payment_method="pm_card_visa")  # fmt: skip
    await tool(services, "default", "consume_credits", customer_id="cus_alan", feature="llm_tokens", quantity=61_250,
               idempotency_key="seed-use-1")  # fmt: skip
    refund_me = await charge(services, "default", customer_id="cus_ada", idempotency_key="seed-refund",
                             product_id="pro_yearly", payment_method="pm_card_visa")  # fmt: skip
    await tool(services, "default", "refund_payment", payment_id=refund_me["payment_id"], idempotency_key="seed-r1",
               amount_minor=5_000, reason="goodwill: outage on the 3rd")  # fmt: skip
    shown["refunded"] = refund_me["payment_id"]
    shown["credits"] = credits["payment_id"]
    await linked_with_a_card(services, "cus_alan")
    await charges_with_keys(services)
    await webhook_endpoints.add(services, tenant_id="acme", url="http://127.0.0.1:9/hooks/paywarden",
                                event_types=["payment.succeeded", "payment.refunded"])  # fmt: skip
    deliverer = webhook_delivery.Deliverer(services)
    await deliverer.deliver_due()  # a first attempt at the app that is not listening: it failed, it waits to retry
    await deliverer.close()
    await spread_over_two_weeks(database_url)
    await webhook_problems(services, refund_me)
    await reconciler.reconcile_once(services)
    conn = await asyncpg.connect(database_url)
    shown["problem_event"] = str(
        await conn.fetchval("SELECT id FROM webhook_events WHERE event_id = 'evt_screens_amount'")
    )
    await conn.close()
    return shown


async def linked_with_a_card(services: Services, customer_id: str) -> None:
    """A customer the merchant had at the provider, with a saved card, linked as `paywarden customers link` does."""
    provider = stripe.StripeClient(
        services.sandbox.api_key,
        base_addresses={"api": f"{services.settings.base_url}/sandbox"},
        http_client=stripe.HTTPXClient(),
    )
    made = await provider.v1.customers.create_async({"email": "alan@example.com"})
    await provider.v1.payment_methods.attach_async("pm_card_visa", {"customer": made.id})
    await customer_records.link(services, "default", customer_id, made.id, force=False, operator="maria")


async def charges_with_keys(services: Services) -> None:
    """Two agents' keys: one with a budget whose charges wait for an operator, one whose person approves."""
    bot = await api_keys.issue(services, tenant_id="default", name="support-bot", scopes=["read", "charge", "refund"],
                               budget_minor=80_000, budget_currency="USD")  # fmt: skip
    await api_keys.issue(services, tenant_id="acme", name="acme-agent", scopes=["read", "charge"], approval="client")
    await api_keys.issue(services, tenant_id="acme", name="old-agent", scopes=["read"])
    for n, (product, amount) in enumerate([("pro_monthly", None), ("pro_yearly", None), (None, 30_000)]):
        await charges.charge(services, ChargeInput(
            customer_id=["cus_linus", "cus_radia", "cus_margaret"][n], idempotency_key=f"bot-{n}", product_id=product,
            amount_minor=amount, currency="USD" if amount else None, description="Fine-tuning run" if amount else None,
            payment_method="pm_card_visa", caller=api_keys.caller_of(bot.key),
        ))  # fmt: skip


async def spread_over_two_weeks(database_url: str) -> None:
    """Made-up history: move the seeded payments back over the last 14 days (screenshots only)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """
            UPDATE payments SET created_at = created_at - make_interval(hours => (abs(hashtext(id)) % 330)),
                   charged_at = charged_at - make_interval(hours => (abs(hashtext(id)) % 330))
             WHERE status <> 'requires_approval' AND id NOT IN (SELECT payment_id FROM refunds)
            """
        )
    finally:
        await conn.close()


async def webhook_problems(services: Services, payment: dict) -> None:
    """A correctly signed event that says another amount (kept as rejected), and a signed body that is no event."""
    wrong_amount = {
        "id": "evt_screens_amount", "object": "event", "type": "payment_intent.succeeded",
        "data": {"object": {"id": payment["provider_payment_id"], "object": "payment_intent", "amount": 1,
                            "currency": "usd", "status": "succeeded",
                            "metadata": {"payment_id": payment["payment_id"]}}},
    }  # fmt: skip
    async with httpx.AsyncClient(base_url=services.settings.base_url) as http:
        for body in (json.dumps(wrong_amount), json.dumps({"id": 7, "type": "?"})):
            header = stripe.WebhookSignature.generate_signature_header(body, WEBHOOK_SECRET, int(time.time()))
            await http.post(
                "/webhooks/stripe",
                content=body,
                headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            )


async def sign_in(page: Page, base: str, name: str, password: str) -> None:
    await page.goto(f"{base}/console")
    await page.get_by_label("Name").fill(name)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(lambda url: "/console/password" in url)
    await page.screenshot(path=str(OUT / "password.png"))
    print("docs/console/password.png  /console/password")
    await page.get_by_label("Current password").fill(password)
    await page.get_by_label("New password", exact=True).fill(PASSWORD)
    await page.get_by_label("New password again").fill(PASSWORD)
    await page.get_by_role("button", name="Set password").click()
    await page.wait_for_url(f"{base}/console")


async def shoot(page: Page, base: str, path: str, name: str, full_page: bool = True) -> None:
    await page.goto(base + path)
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=str(OUT / f"{name}.png"), full_page=full_page)
    print(f"docs/console/{name}.png  {path}")


async def screenshots(services: Services, shown: dict[str, str]) -> None:
    base = services.settings.base_url
    admin = await operators.create(services, name="maria", role="admin", by=operators.Acting("screenshots", "cli"))
    await operators.create(services, name="sam", role="support", tenant_id="acme", by=operators.Acting("maria", "cli"))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        signin = await (await browser.new_context(viewport={"width": 1280, "height": 720})).new_page()
        await signin.goto(f"{base}/console")
        await signin.screenshot(path=str(OUT / "sign-in.png"))
        print("docs/console/sign-in.png  /console/sign-in")
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        await page.set_viewport_size({"width": 1280, "height": 720})
        await sign_in(page, base, "maria", admin.password)
        await page.set_viewport_size({"width": 1280, "height": 900})
        pages = [
            ("/console?days=30", "overview"),
            ("/console/payments", "payments"),
            (f"/console/payments/{shown['refunded']}", "payment"),
            ("/console/approvals", "approvals"),
            ("/console/customer?tenant=default&id=cus_alan", "customer"),
            ("/console/inbox", "inbox"),
            (f"/console/inbox/{shown['problem_event']}", "event"),
            ("/console/endpoints", "endpoints"),
            ("/console/keys", "keys"),
            ("/console/operators", "operators"),
            ("/console/activity", "activity"),
        ]
        for path, name in pages:
            await shoot(page, base, path, name, full_page=name != "payments")  # the list: its first screen
        await page.goto(f"{base}/console/payments/{shown['refunded']}")
        await page.get_by_label("Reason").fill("customer asked")
        await page.get_by_role("button", name="Refund…").click()
        await page.wait_for_load_state("networkidle")
        await page.screenshot(path=str(OUT / "refund-confirm.png"), full_page=True)
        print("docs/console/refund-confirm.png")
        phone = await browser.new_context(
            viewport={"width": 390, "height": 844}, storage_state=await context.storage_state()
        )
        small = await phone.new_page()
        await shoot(small, base, "/console", "phone-overview")
        await shoot(small, base, f"/console/payments/{shown['refunded']}", "phone-payment")
        await browser.close()


async def main(server: str | None) -> None:
    async with scratch_database(server) as database_url:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        settings = Settings(
            _env_file=None, database_url=database_url, port=sock.getsockname()[1], provider="sandbox",
            stripe_webhook_secret=WEBHOOK_SECRET, sandbox_delivery_interval_seconds=0.2,
            reconcile_interval_seconds=0, approval_threshold_minor=25_000, duplicate_window_seconds=0,
            allow_private_webhook_urls=True,
        )  # fmt: skip
        async with open_services(settings, serve_sandbox=True) as services, serving(services, sock):
            shown = await seed(services, database_url)
            await screenshots(services, shown)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mcp").setLevel(logging.WARNING)
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--server", help="a PostgreSQL server URL to make the scratch database on")
    asyncio.run(main(arguments.parse_args().server))
