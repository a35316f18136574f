"""Customers: a merchant already on Stripe links its customers (their saved cards come along); get_customer
and `paywarden customers show` tell what a customer has; another tenant's customer is unknown."""

from __future__ import annotations

import asyncpg
import stripe

from tests.helpers import (
    call,
    call_error,
    customer_at_the_provider,
    http_client,
    new_key,
    paywarden_command,
)


async def paywarden(app, *args: str, expect_failure: bool = False) -> str:
    code, out = await paywarden_command(app.settings.database_url, *args, port=str(app.settings.port))
    assert (code != 0) == expect_failure, out
    return out


async def test_a_linked_customers_saved_cards_can_be_charged(app, mcp, db: asyncpg.Connection) -> None:
    cus = await customer_at_the_provider(app, "pm_card_chargeCustomerFail", "pm_card_visa")
    out = await paywarden(app, "customers", "link", "alice", cus, "--by", "olga")
    assert f"alice of tenant 'default' is linked to {cus}" in out and "2 saved card(s) imported" in out
    assert "visa ending 4242, expires 12/2034  (default)" in out
    async with mcp() as client:
        view = await call(client, "get_customer", customer_id="alice")
        charge = await call(
            client, "create_charge", customer_id="alice", idempotency_key="k1", product_id="day_pass",
            payment_method="saved",
        )  # fmt: skip
    assert view["provider_customer_id"] == cus
    assert [(card["last4"], card["is_default"]) for card in view["payment_methods"]] == [("4242", True),
                                                                                         ("0341", False)]  # fmt: skip
    assert charge["status"] == "succeeded"
    audit = await db.fetch("SELECT actor, action, detail FROM customer_audit ORDER BY id")
    assert ("operator", "linked", f"linked to {cus} by olga") in [tuple(row) for row in audit]


async def test_linking_checks_the_provider_and_relinks_only_when_forced(app, db: asyncpg.Connection) -> None:
    first = await customer_at_the_provider(app, "pm_card_visa")
    second = await customer_at_the_provider(app)
    missing = await paywarden(app, "customers", "link", "bob", "cus_nope", expect_failure=True)
    assert "The provider has no customer 'cus_nope'" in missing
    await paywarden(app, "customers", "link", "bob", first)
    refused = await paywarden(app, "customers", "link", "bob", second, expect_failure=True)
    assert f"already linked to {first}; pass --force" in refused
    taken = await paywarden(app, "customers", "link", "carl", first, expect_failure=True)
    assert f"{first} is already linked to customer 'bob'" in taken
    await paywarden(app, "tenants", "create", "acme")
    elsewhere = await paywarden(app, "customers", "link", "carl", first, "--tenant", "acme", expect_failure=True)
    assert f"{first} is already linked to another customer;" in elsewhere  # another tenant's is never named
    assert "bob" not in elsewhere and "default" not in elsewhere

    forced = await paywarden(app, "customers", "link", "bob", second, "--force", "--by", "olga")
    assert f"linked to {second} (was {first})" in forced and "saved cards: none" in forced
    relinked = await db.fetchval("SELECT detail FROM customer_audit WHERE action = 'linked' ORDER BY id DESC LIMIT 1")
    assert relinked == f"linked to {second} by olga (was {first}; its 1 saved card(s) forgotten)"
    listed = await paywarden(app, "customers", "list")
    assert f"default bob {second}" in listed and "1 customer(s)" in listed


async def test_customers_list_shows_one_tenants_customers_when_asked(app, database_url: str) -> None:
    await new_key(database_url, tenant_id="acme")  # creates the tenant
    ours, theirs = await customer_at_the_provider(app), await customer_at_the_provider(app)
    await paywarden(app, "customers", "link", "bob", ours)
    await paywarden(app, "customers", "link", "bob", theirs, "--tenant", "acme")
    everyone = await paywarden(app, "customers", "list")
    assert f"default bob {ours} since " in everyone and f"acme bob {theirs} since " in everyone
    assert "2 customer(s) linked to a provider customer" in everyone
    only_acme = await paywarden(app, "customers", "list", "--tenant", "acme")
    assert f"acme bob {theirs} since " in only_acme and ours not in only_acme
    assert "1 customer(s) linked to a provider customer" in only_acme
    nobody = await paywarden(app, "customers", "list", "--tenant", "nobody")
    assert "0 customer(s) linked to a provider customer" in nobody


async def test_customers_show_and_get_customer_tell_everything_a_customer_has(app, mcp) -> None:
    async with mcp() as client:
        paid = await call(
            client, "create_charge", customer_id="dana", idempotency_key="k1", product_id="pro_monthly",
            payment_method="pm_card_visa",
        )  # fmt: skip
        await call(
            client, "create_charge", customer_id="dana", idempotency_key="k2", product_id="credits_100k",
            payment_method="pm_card_visa",
        )  # fmt: skip
        view = await call(client, "get_customer", customer_id="dana")
    assert [(e["feature"], e["payment_id"], e["product_id"]) for e in view["entitlements"]] == [
        ("pro", paid["payment_id"], "pro_monthly")
    ]
    assert view["credits"][0]["feature"] == "llm_tokens" and view["credits"][0]["remaining"] == 100_000
    assert len(view["latest_payments"]) == 2 and view["payment_methods"] == []
    assert "setup_payment_method" in view["next_step"]
    shown = await paywarden(app, "customers", "show", "dana")
    assert "provider customer (none yet)" in shown and "pro until" in shown
    assert "credits llm_tokens: 100000 remaining of 100000 granted" in shown and paid["payment_id"] in shown


async def test_another_tenants_customer_is_unknown(app, database_url: str, mcp) -> None:
    async with mcp() as client:  # the default tenant's customer
        await call(
            client, "create_charge", customer_id="erin", idempotency_key="k1", product_id="day_pass",
            payment_method="pm_card_visa",
        )  # fmt: skip
    other = await new_key(database_url, tenant_id="tenant-b")
    async with http_client(f"{app.base_url}/mcp", other) as client:
        theirs = await call_error(client, "get_customer", customer_id="erin")
        nobody = await call_error(client, "get_customer", customer_id="zed")
    assert theirs.replace("erin", "X") == nobody.replace("zed", "X") and "No customer 'erin'" in theirs


async def test_the_sandbox_key_command_prints_the_key_a_stripe_client_uses(app) -> None:
    printed = (await paywarden(app, "sandbox", "key")).strip()
    assert printed == app.services.sandbox.api_key and printed.startswith("sk_test_")
    client = stripe.StripeClient(
        printed, base_addresses={"api": f"{app.base_url}/sandbox"}, http_client=stripe.HTTPXClient()
    )
    customer = await client.v1.customers.create_async({"name": "Ada"})
    assert (await client.v1.customers.retrieve_async(customer.id)).name == "Ada"
