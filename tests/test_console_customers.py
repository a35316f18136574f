"""The console's customers: one customer as get_customer and `paywarden customers show` see them (saved cards,
the provider customer), and linking one to an existing provider customer, as `paywarden customers link` does."""

from __future__ import annotations

import asyncpg

from server import tenants
from tests.helpers import call, console_client, customer_at_the_provider, new_operator, save_card, visible_text

LINK = "/console/customers/link"
LINK_FORM = f'action="{LINK}"'


async def test_a_customer_with_only_a_saved_card_shows_with_her_card(app, mcp) -> None:
    async with mcp() as client:
        view = await save_card(client, "zoe")
    card = view["payment_methods"][0]
    password = await new_operator(app.services, "vic", "viewer")
    async with console_client(app, "vic", password) as console:
        page = await console.get("/console/customer?tenant=default&id=zoe")
        found = await console.get("/console/customers?q=ZO")
    assert page.status_code == 200, page.text[:2000]
    text = visible_text(page.text)
    assert f"visa ending 4242 12/2034 default {card['payment_method_id']}" in text
    assert f"Provider customer {view['provider_customer_id']}" in text and "card_saved" in text
    assert "create_charge(..., payment_method='saved')" in text  # the same next step get_customer gives
    assert LINK_FORM not in page.text and "your role (viewer) takes no actions" in text
    assert "zoe" in visible_text(found.text) and LINK_FORM not in found.text  # found without a payment


async def test_support_links_a_customer_as_the_cli_does(app, db: asyncpg.Connection) -> None:
    first = await customer_at_the_provider(app, "pm_card_visa")
    second = await customer_at_the_provider(app)
    page = "/console/customer?tenant=default&id=bob"
    password = await new_operator(app.services, "sam", "support")
    async with console_client(app, "sam", password) as console:
        assert LINK_FORM in (await console.get("/console/customers")).text
        linked = await console.post(LINK, {"tenant": "default", "customer_id": "bob", "provider_customer_id": first,
                                           "back": "/console/customers"})  # fmt: skip
        assert str(linked.url).endswith(page.removeprefix("/console"))
        text = visible_text(linked.text)
        assert f"bob is linked to {first}; 1 saved card(s) imported" in text and "visa ending 4242" in text
        assert LINK_FORM in linked.text

        def link(provider_customer_id: str, **more: str) -> dict[str, str]:
            return {"tenant": "default", "customer_id": "bob", "provider_customer_id": provider_customer_id,
                    "back": page, **more}  # fmt: skip

        for fields, said in [
            (link("cus_nope"), "The provider has no customer 'cus_nope' (or it was deleted); check the id."),
            (link("nope"), "A provider customer id looks like cus_ followed by letters and digits"),
            (link(second), f"already linked to {first}; pass --force (in the console: tick “relink”) to relink it"),
            ({**link(first), "customer_id": "carl"}, f"{first} is already linked to customer 'bob'; one provider"),
        ]:  # fmt: skip
            refused = await console.post(LINK, fields)
            assert refused.status_code == 200 and str(refused.url).endswith(page.removeprefix("/console"))
            assert said in visible_text(refused.text), (fields, visible_text(refused.text)[:1500])
        forced = await console.post(LINK, link(second, force="yes"))
        text = visible_text(forced.text)
        assert f"bob is linked to {second} (was {first}); 0 saved card(s) imported" in text and "No saved card." in text
    logged = await db.fetch("SELECT subject, tenant_id, detail FROM operator_audit WHERE action = 'customer.link' "
                            "AND operator = 'sam' AND via = 'console' ORDER BY id")  # fmt: skip
    assert [tuple(row) for row in logged] == [("bob", "default", f"linked to {first}"),
                                              ("bob", "default", f"linked to {second} (was {first})")]  # fmt: skip
    relinked = await db.fetchval("SELECT detail FROM customer_audit WHERE action = 'linked' ORDER BY id DESC LIMIT 1")
    assert relinked == f"linked to {second} by sam (was {first}; its 1 saved card(s) forgotten)"
    assert await db.fetchval("SELECT count(*) FROM customers WHERE customer_id = 'carl'") == 0


async def test_a_viewer_cannot_link_and_a_link_without_the_csrf_token_is_refused(app, db: asyncpg.Connection) -> None:
    cus = await customer_at_the_provider(app)
    fields = {"tenant": "default", "customer_id": "dan", "provider_customer_id": cus, "back": "/console/customers"}
    password = await new_operator(app.services, "vic", "viewer")
    async with console_client(app, "vic", password) as console:
        forged = await console.post(LINK, fields)
    assert forged.status_code == 403 and "has the viewer role, which may not do this" in visible_text(forged.text)
    password = await new_operator(app.services, "sam", "support")
    async with console_client(app, "sam", password) as console:
        tokenless = await console.post(LINK, fields, csrf=False)
    assert tokenless.status_code == 403 and "security token is missing or wrong" in visible_text(tokenless.text)
    assert await db.fetchval("SELECT count(*) FROM customers") == 0
    assert await db.fetchval("SELECT count(*) FROM operator_audit WHERE action = 'customer.link'") == 0


async def test_a_tenants_operator_links_that_tenants_customers_only(app, db: asyncpg.Connection) -> None:
    for tenant in ("tenant-a", "tenant-b"):
        await tenants.create(app.services, tenant)
    cus = await customer_at_the_provider(app, "pm_card_visa")
    password = await new_operator(app.services, "tess", "support", tenant_id="tenant-a")
    async with console_client(app, "tess", password) as console:
        linked = await console.post(LINK, {"tenant": "tenant-b", "customer_id": "dan", "provider_customer_id": cus,
                                           "back": "/console/customers"})  # fmt: skip
        assert "dan is linked to" in visible_text(linked.text) and "tenant tenant-a" in visible_text(linked.text)
        assert (await console.get("/console/customer?tenant=tenant-b&id=dan")).status_code == 200  # tenant-a's dan
    assert [tuple(row) for row in await db.fetch("SELECT tenant_id, customer_id FROM customers")] == [
        ("tenant-a", "dan")
    ]


async def test_a_customers_subscriptions_show_on_their_page(app, mcp) -> None:
    async with mcp() as client:
        started = await call(
            client, "start_subscription", customer_id="sue", product_id="pro_ai_monthly", idempotency_key="s1",
            payment_method="pm_card_visa",
        )  # fmt: skip
    password = await new_operator(app.services, "vi", "viewer")
    async with console_client(app, "vi", password) as console:
        page = await console.get("/console/customer?tenant=default&id=sue")
        nobody = await console.get("/console/customer?tenant=default&id=zoe")
    text = visible_text(page.text)
    assert f"{started['subscription_id']} pro_ai_monthly active" in text, text[:3000]
    assert started["first_payment_id"] in text
    assert nobody.status_code == 404 or "No subscriptions." in visible_text(nobody.text)
