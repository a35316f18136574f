"""The operator console over plain HTTP, as a browser without JavaScript uses it: every page reads, actions are
form posts answered by a redirect and a message; roles, tenants, filters, paging, the admin pages."""

from __future__ import annotations

import re

import asyncpg
from mcp import Client

from server import overview, payment_search, tenants
from server.payment_search import PaymentFilters
from tests.helpers import (
    LOCAL,
    call,
    console_client,
    intent_event,
    local_http,
    new_key,
    new_operator,
    paywarden_command,
    post_webhook,
    signed,
    visible_text,
)
from tools.server import build_server

BIG = {"customer_id": "cus_big", "idempotency_key": "big-1", "amount_minor": 12_000, "currency": "USD",
       "description": "GPU hours", "payment_method": "pm_card_visa"}  # fmt: skip
PAID = {"customer_id": "cus_paid", "idempotency_key": "paid-1", "product_id": "pro_monthly",
        "payment_method": "pm_card_visa"}  # fmt: skip
PAGES = ["/console", "/console?days=30", "/console?days=90", "/console/payments", "/console/approvals",
         "/console/customers", "/console/inbox", "/console/inbox?outcome=all", "/console/keys", "/console/operators",
         "/console/tenants", "/console/activity", "/console/endpoints"]  # fmt: skip
ACME_SECRET = "whsec_acmeSigningSecret0123456789abcdef"
EMPTY_TOKEN = 'name="csrf_token" value=""'


async def test_every_page_reads_without_javascript_and_loads_nothing_from_elsewhere(app, mcp) -> None:
    async with mcp() as client:
        paid = await call(client, "create_charge", **PAID)
        held = await call(client, "create_charge", **BIG)
    password = await new_operator(app.services, "ada", "admin")
    async with console_client(app, "ada", password) as console:
        for path in [*PAGES, f"/console/payments/{paid['payment_id']}", f"/console/payments/{held['payment_id']}",
                     "/console/customer?tenant=default&id=cus_paid"]:  # fmt: skip
            answer = await console.get(path)
            assert answer.status_code == 200, (path, answer.text[:2000])
            assert answer.headers["cache-control"] == "no-store" and answer.headers["x-frame-options"] == "DENY"
            assert "script-src 'self';" in answer.headers["content-security-policy"]
            assert not re.search(r"<script>|\son[a-z]+=", answer.text)  # no inline script: the policy forbids it
            assert EMPTY_TOKEN not in answer.text and "<form" in answer.text  # every form carries the token
            for resource in re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', answer.text):
                assert resource.startswith("/console/static/"), resource  # no CDN
        htmx = await console.get("/console/static/htmx-4.0.1.min.js")
    assert htmx.status_code == 200 and "htmx" in htmx.text


async def test_the_root_leads_to_the_console(app) -> None:
    async with local_http(base_url=app.base_url, follow_redirects=True) as http:
        answer = await http.get("/")
    assert answer.url.path == "/console/sign-in" and "Sign in" in visible_text(answer.text)


async def test_approve_and_reject_are_form_posts_without_javascript(app, mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        first = await call(client, "create_charge", **BIG)
        second = await call(client, "create_charge", **{**BIG, "idempotency_key": "big-2", "customer_id": "c2"})
    password = await new_operator(app.services, "sam", "support")
    async with console_client(app, "sam", password) as console:
        approved = await console.post(
            f"/console/payments/{first['payment_id']}/approve", {"back": "/console/approvals"}
        )
        assert approved.url.path == "/console/approvals"
        assert f"{first['payment_id']} approved by sam: now succeeded." in visible_text(approved.text)
        back = f"/console/payments/{second['payment_id']}"
        rejected = await console.post(f"{back}/reject", {"back": back, "reason": "not today"})
        assert "rejected by sam: now canceled." in visible_text(
            rejected.text
        ) and "rejected by operator sam: not today" in visible_text(rejected.text)
        again = await console.post(f"/console/payments/{second['payment_id']}/approve", {"back": "/console/approvals"})
        assert again.url.path == "/console/approvals" and "is canceled, not waiting for approval" in visible_text(
            again.text
        )
        elsewhere = await console.post(f"/console/payments/{first['payment_id']}/approve",
                                       {"back": "https://evil.example/phish"})  # fmt: skip
        assert elsewhere.url.host == "127.0.0.1"  # only ever back to a console page
    assert await db.fetchval("SELECT failure_reason FROM payments WHERE id = $1", second["payment_id"]) == (
        "rejected by operator sam: not today"
    )
    logged = await db.fetch("SELECT action, subject FROM operator_audit WHERE operator = 'sam' AND via = 'console'")
    assert {(row["action"], row["subject"]) for row in logged} >= {
        ("payment.approve", first["payment_id"]), ("payment.reject", second["payment_id"])
    }  # fmt: skip


async def test_a_refund_that_cannot_be_made_says_why_on_the_payment_page(app, mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        paid = await call(client, "create_charge", **PAID)
        held = await call(client, "create_charge", **BIG)
    password = await new_operator(app.services, "sam", "support")
    page = f"/console/payments/{paid['payment_id']}"
    async with console_client(app, "sam", password) as console:
        for amount, said in [("25.00", "At most 20.00 USD of payment"), ("-1", "A refund is a positive amount"),
                             ("1.234", "has more decimals than USD has (2)"), ("ten", "is not an amount")]:  # fmt: skip
            answer = await console.post(f"{page}/refund/confirm", {"amount": amount, "idempotency_key": amount,
                                                                   "back": page})  # fmt: skip
            assert answer.url.path == page and said in visible_text(answer.text), (amount, answer.text[-3000:])
        confirm = await console.post(f"{page}/refund", {"amount": "", "back": page})
        assert "Refund 20.00 USD?" in visible_text(confirm.text) and "everything that is left" in visible_text(
            confirm.text
        )
        held_page = f"/console/payments/{held['payment_id']}"
        for step in ("refund", "refund/confirm"):  # the confirm step refuses what the refund would refuse
            unpaid = await console.post(f"{held_page}/{step}", {"idempotency_key": "x", "back": held_page})
            assert "is requires_approval; only a paid payment can be refunded" in visible_text(unpaid.text)
        too_much = await console.post(f"{page}/refund", {"amount": "20.01", "back": page})
        assert too_much.url.path == page and "At most 20.00 USD of payment" in visible_text(too_much.text)
    assert await db.fetchval("SELECT count(*) FROM refunds") == 0


async def test_payments_filter_and_page(app, mcp, services) -> None:
    async with mcp() as client:
        made = [("pro_monthly", "pm_card_visa"), ("day_pass", "pm_card_visa"), ("image_studio_monthly", "pm_card_visa"),
                ("pro_monthly", "pm_card_chargeDeclined"), ("day_pass", None)]  # fmt: skip
        for n, (product, method) in enumerate(made):
            await call(client, "create_charge", customer_id=f"cus_{n}", idempotency_key="k", product_id=product,
                       payment_method=method)  # fmt: skip

    async def ids(**filters: str) -> list[str]:
        found = await payment_search.search(app.services, None, PaymentFilters(**filters))
        return [payment.customer_id for payment in found.payments]

    assert await ids() == ["cus_4", "cus_3", "cus_2", "cus_1", "cus_0"]
    assert await ids(status="failed") == ["cus_3"] and await ids(product="day_pass") == ["cus_4", "cus_1"]
    assert await ids(customer="cus_2") == ["cus_2"] and await ids(currency="eur") == ["cus_2"]
    assert await ids(amount_min="3.00", amount_max="15.00", currency="USD") == ["cus_4", "cus_1"]
    assert await ids(date_from="2000-01-01", date_to="2000-12-31") == []
    first = await payment_search.search(app.services, None, PaymentFilters(), limit=2)
    second = await payment_search.search(app.services, None, PaymentFilters(), first.next_cursor, limit=2)
    third = await payment_search.search(app.services, None, PaymentFilters(), second.next_cursor, limit=2)
    assert [p.customer_id for p in first.payments + second.payments + third.payments] == await ids()
    assert third.next_cursor is None

    password = await new_operator(app.services, "vic", "viewer")
    async with console_client(app, "vic", password) as console:
        refused = await console.get("/console/payments?amount_min=5")
        assert refused.status_code == 400 and "Choose a currency to filter by amount" in visible_text(refused.text)
        refused = await console.get("/console/payments?date_from=yesterday")
        assert refused.status_code == 400 and "write it as YYYY-MM-DD" in visible_text(refused.text)
        shown = await console.get("/console/payments?status=failed")
        assert "cus_3" in visible_text(shown.text) and "cus_1" not in visible_text(shown.text)


async def test_a_tenants_operator_sees_only_that_tenant(app, db: asyncpg.Connection, database_url: str) -> None:
    for tenant in ("tenant-a", "tenant-b"):
        await tenants.create(app.services, tenant)
    charged = {}
    for tenant in ("tenant-a", "tenant-b"):
        async with Client(build_server(app.services, local_tenant=tenant)) as client:
            paid = await call(client, "create_charge", **{**PAID, "customer_id": f"cus_{tenant}"})
            charged[tenant] = (paid, await call(client, "create_charge", **{**BIG, "customer_id": f"cus_{tenant}"}))
    theirs, their_held = charged["tenant-b"]
    body = f'{{"id": "evt_b", "type": "customer.created", "data": {{"object": {{"id": "{theirs["payment_id"]}"}}}}}}'
    await post_webhook(app, body, signed(body))
    event_b = await db.fetchval(
        "UPDATE webhook_events SET tenant_id = 'tenant-b' WHERE event_id = 'evt_b' RETURNING id"
    )
    their_key = await new_key(database_url, "tenant-b", name="b's agent")
    key_id = await db.fetchval("SELECT id FROM api_keys WHERE tenant_id = 'tenant-b'")
    password = await new_operator(app.services, "ann", "admin", tenant_id="tenant-a")
    async with console_client(app, "ann", password) as console:
        for path in ["/console/payments", "/console/approvals", "/console/customers", "/console/inbox?outcome=all",
                     "/console/keys", "/console/operators", "/console/activity", "/console/endpoints"]:  # fmt: skip
            page = await console.get(path)
            assert page.status_code == 200 and "tenant-b" not in page.text and theirs["payment_id"] not in page.text
        assert "cus_tenant-a" in (await console.get("/console/customers")).text
        for path in [f"/console/payments/{theirs['payment_id']}", "/console/customer?tenant=tenant-b&id=cus_tenant-b",
                     f"/console/inbox/{event_b}", "/console/inbox/not-a-number"]:  # fmt: skip
            assert (await console.get(path)).status_code == 404, path
        for path, data in [(f"/console/payments/{their_held['payment_id']}/approve", {}),
                           (f"/console/payments/{theirs['payment_id']}/refund/confirm", {"idempotency_key": "x"}),
                           (f"/console/inbox/{event_b}/replay", {}),
                           (f"/console/keys/{key_id}/revoke", {})]:  # fmt: skip
            assert (await console.post(path, data)).status_code == 404, path
        assert (await console.get("/console/tenants")).text.count("<tr>") == 1  # a tenant's admin manages no tenants
        assert (await console.post("/console/tenant", {"tenant": "tenant-b"})).status_code == 400
    assert (
        await db.fetchval("SELECT status FROM payments WHERE id = $1", their_held["payment_id"]) == "requires_approval"
    )
    assert await db.fetchval("SELECT revoked_at FROM api_keys WHERE id = $1", key_id) is None and their_key


async def test_a_platform_operator_switches_tenants(app, mcp) -> None:
    await tenants.create(app.services, "acme")
    async with mcp() as client:
        ours = await call(client, "create_charge", **PAID)
    async with Client(build_server(app.services, local_tenant="acme")) as client:
        acmes = await call(client, "create_charge", **PAID)
    password = await new_operator(app.services, "pat", "viewer")
    async with console_client(app, "pat", password) as console:
        both = await console.get("/console/payments")
        assert ours["payment_id"] in both.text and acmes["payment_id"] in both.text
        switched = await console.post("/console/tenant", {"tenant": "acme", "back": "/console/payments"})
        assert acmes["payment_id"] in visible_text(switched.text) and ours["payment_id"] not in visible_text(
            switched.text
        )
        assert "Payments · acme" in visible_text(switched.text)
        assert ours["payment_id"] in (await console.get(f"/console/payments/{ours['payment_id']}")).text  # by URL
        everything = await console.post("/console/tenant", {"tenant": "", "back": "/console/payments"})
        assert ours["payment_id"] in visible_text(everything.text) and acmes["payment_id"] in visible_text(
            everything.text
        )


async def test_admins_manage_keys_operators_and_tenants(app, mcp, db: asyncpg.Connection) -> None:
    password = await new_operator(app.services, "ada", "admin")
    async with console_client(app, "ada", password) as console:
        created = await console.post("/console/keys", {"tenant": "default", "name": "support bot",
                                                       "scopes": ["read", "charge"], "budget": "100.00",
                                                       "budget_currency": "usd", "approval": "client"})  # fmt: skip
        secret = re.search(r'id="new-key">(pwk_[^<]+)<', created.text).group(1)
        assert "the only time it is shown" in visible_text(created.text)
        stored = await db.fetchrow("SELECT id, budget_minor, budget_currency, scopes FROM api_keys")
        assert (stored["budget_minor"], stored["budget_currency"], stored["scopes"]) == (
            10_000,
            "USD",
            ["read", "charge"],
        )
        from tests.helpers import http_client

        async with http_client(f"{app.base_url}/mcp", secret) as agent:  # the key works, and its spend shows
            await call(agent, "create_charge", **PAID)
        keys = await console.get("/console/keys")
        assert "20.00 USD of 100.00 USD per 24 hours" in visible_text(keys.text) and secret not in visible_text(
            keys.text
        )
        revoked = await console.post(f"/console/keys/{stored['id']}/revoke")
        assert f"Key {stored['id']} (support bot) is revoked." in visible_text(revoked.text)

        made = await console.post("/console/operators", {"name": "sam", "role": "support", "tenant": ""})
        one_time = re.search(r'id="one-time-password">([^<]+)<', made.text).group(1)
        reset = await console.post("/console/operators/sam/reset")
        assert re.search(r'id="one-time-password">([^<]+)<', reset.text).group(1) != one_time
        disabled = await console.post("/console/operators/sam/disable")
        assert "Operator 'sam' is disabled" in visible_text(disabled.text)
        myself = await console.post("/console/operators/ada/disable", {"back": "/console/operators"})
        assert "You cannot disable yourself; ask another admin." in visible_text(myself.text)
        assert await db.fetchval("SELECT disabled_at FROM operators WHERE name = 'ada'") is None

        opened = await console.post("/console/tenants", {"tenant": "acme", "name": "Acme"})
        assert "Tenant 'acme' created." in visible_text(opened.text)
        endpoint = await console.post("/console/tenants/acme/webhook-secret", {"secret": ACME_SECRET})
        assert "/webhooks/stripe/acme now verifies with the given secret" in visible_text(endpoint.text)
        assert await db.fetchval("SELECT webhook_secret FROM tenants WHERE id = 'acme'") == ACME_SECRET
    actions = [row["action"] for row in await db.fetch("SELECT action FROM operator_audit WHERE operator = 'ada'")]
    assert actions[1:] == ["password.change", "key.create", "key.revoke", "operator.create", "operator.reset",
                           "operator.disable", "tenant.create", "tenant.webhook_secret.set"]  # fmt: skip


async def test_roles_decide_what_an_operator_may_open(app) -> None:
    password = await new_operator(app.services, "sam", "support")
    async with console_client(app, "sam", password) as console:
        for path in ("/console/keys", "/console/operators", "/console/tenants"):
            answer = await console.get(path)
            assert answer.status_code == 403 and "has the support role, which may not" in visible_text(answer.text)
        created = await console.post("/console/keys", {"tenant": "default", "name": "x", "scopes": ["read"]})
        assert created.status_code == 403
        assert "API keys" not in (await console.get("/console")).text


async def test_the_reconciler_from_the_console_and_its_last_pass_on_the_overview(app, db: asyncpg.Connection) -> None:
    password = await new_operator(app.services, "sam", "support")
    async with console_client(app, "sam", password) as console:
        assert "has not run yet" in (await console.get("/console")).text
        ran = await console.post("/console/reconcile", {"back": "/console"})
        assert "Reconciler: resubmitted 0, updated 0" in visible_text(ran.text) and "last pass" in visible_text(
            ran.text
        )
    assert await db.fetchval("SELECT count(*) FROM reconciler_runs") == 1
    await tenants.create(app.services, "acme")
    password = await new_operator(app.services, "tess", "support", tenant_id="acme")
    async with console_client(app, "tess", password) as console:
        assert (await console.post("/console/reconcile", {"back": "/console"})).status_code == 403


async def test_a_customer_their_entitlements_credits_and_payments(app, mcp) -> None:
    async with mcp() as client:
        bought = await call(client, "create_charge", customer_id="cus_ai", idempotency_key="c",
                            product_id="credits_100k", payment_method="pm_card_visa")  # fmt: skip
        await call(client, "create_charge", customer_id="cus_ai", idempotency_key="p", product_id="pro_monthly",
                   payment_method="pm_card_visa")  # fmt: skip
        await call(client, "consume_credits", customer_id="cus_ai", feature="llm_tokens", quantity=1234,
                   idempotency_key="use-1")  # fmt: skip
    password = await new_operator(app.services, "vic", "viewer")
    async with console_client(app, "vic", password) as console:
        found = await console.get("/console/customers?q=AI")
        assert "cus_ai" in visible_text(found.text)
        profile = await console.get("/console/customer?tenant=default&id=cus_ai")
        assert profile.status_code == 200
        text = visible_text(profile.text)
        assert "llm_tokens 100000 1234 0 98766" in text  # granted, used, reserved, remaining
        assert "pro" in text and "active" in text and bought["payment_id"] in text and "consume" in text
        assert (await console.get("/console/customer?tenant=default&id=nobody")).status_code == 404


async def test_the_approvals_command_lists_what_waits(app, mcp, database_url: str) -> None:
    async with mcp() as client:
        held = await call(client, "create_charge", **BIG)
    code, listed = await paywarden_command(database_url, "approvals")
    assert (
        code == 0 and f"{held['payment_id']} since " in listed and "customer=cus_big 120.00 USD 'GPU hours'" in listed
    )
    assert "because it is above the approval threshold of 50.00 USD" in listed and "1 payment(s) waiting" in listed


async def test_the_overview_counts_per_day_status_and_currency(app, mcp, db: asyncpg.Connection) -> None:
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
    assert numbers.inbox_problems == {"failed": 0, "parked": 0, "rejected": 0, "needs_attention": 0}
    assert LOCAL.tenant_id == "default"


async def test_the_apps_webhook_endpoints_from_the_console(app, mcp, db: asyncpg.Connection) -> None:
    from tests.helpers import eventually, webhook_receiver

    password = await new_operator(app.services, "ada", "admin")
    async with webhook_receiver() as receiver, console_client(app, "ada", password) as console:
        added = await console.post("/console/endpoints", {"tenant": "default", "url": receiver.url,
                                                          "event_types": ["payment.succeeded"]})  # fmt: skip
        receiver.secrets = [re.search(r'id="endpoint-secret">(whsec_[^<]+)<', added.text).group(1)]
        endpoint_id = await db.fetchval("SELECT id FROM webhook_endpoints")
        async with mcp() as client:
            paid = await call(client, "create_charge", **PAID)
        await eventually(lambda: _arrived(receiver, 1))
        event_id = receiver.events[0]["id"]
        assert receiver.events[0]["data"]["payment_id"] == paid["payment_id"]

        async def delivered() -> bool:  # the receiver answers before the delivery's outcome is written
            page = await console.get(f"/console/endpoints/{endpoint_id}")
            return event_id in page.text and "delivered" in visible_text(page.text)

        await eventually(delivered)
        back = f"/console/endpoints/{endpoint_id}"
        again = await console.post("/console/endpoints/redeliver", {"event_id": event_id, "back": back})
        assert f"Event {event_id} is queued again for 1 endpoint(s)" in visible_text(again.text)
        await eventually(lambda: _arrived(receiver, 2))
        assert receiver.ids()[event_id] == 2  # the same webhook-id: the app deduplicates on it

        rotated = await console.post(f"/console/endpoints/{endpoint_id}/rotate")
        assert re.search(r'id="endpoint-secret">(whsec_[^<]+)<', rotated.text).group(1) not in receiver.secrets
        disabled = await console.post(f"/console/endpoints/{endpoint_id}/disable")
        assert "is disabled: its events queue until it is enabled again" in visible_text(disabled.text)
        enabled = await console.post(f"/console/endpoints/{endpoint_id}/enable")
        assert "is enabled; 0 waiting deliveries go out now" in visible_text(enabled.text)
        removed = await console.post(f"/console/endpoints/{endpoint_id}/remove")
        assert "is removed: nothing more is sent to it" in visible_text(removed.text)
    actions = await db.fetch(
        "SELECT action FROM operator_audit WHERE subject IN ($1, $2) ORDER BY id", endpoint_id, event_id
    )
    assert [row["action"] for row in actions] == ["endpoint.add", "event.redeliver", "endpoint.rotate_secret",
                                                  "endpoint.disable", "endpoint.enable", "endpoint.remove"]  # fmt: skip

    password = await new_operator(app.services, "sam", "support")
    async with console_client(app, "sam", password) as console:
        refused = await console.post("/console/endpoints", {"tenant": "default", "url": "http://127.0.0.1:9/x"})
        assert refused.status_code == 403


async def _arrived(receiver, count: int) -> bool:
    return len(receiver.events) >= count


async def test_payments_filter_by_api_key(app, mcp, database_url: str, db: asyncpg.Connection) -> None:
    from tests.helpers import http_client

    secret = await new_key(database_url, name="the agent")
    key_id = await db.fetchval("SELECT id FROM api_keys")
    async with mcp() as client:
        await call(client, "create_charge", **{**PAID, "customer_id": "cus_local"})
    async with http_client(f"{app.base_url}/mcp", secret) as agent:
        keyed = await call(agent, "create_charge", **{**PAID, "customer_id": "cus_keyed"})
    found = await payment_search.search(app.services, None, PaymentFilters(api_key=key_id))
    assert [payment.payment_id for payment in found.payments] == [keyed["payment_id"]]
    password = await new_operator(app.services, "vic", "viewer")
    async with console_client(app, "vic", password) as console:
        shown = visible_text((await console.get(f"/console/payments?api_key={key_id}")).text)
        everything = visible_text((await console.get("/console/payments")).text)
    assert "cus_keyed" in shown and "cus_local" not in shown
    assert "cus_keyed" in everything and "cus_local" in everything


async def test_the_inbox_lists_problems_first_and_filters_by_type_and_date(app, mcp, db: asyncpg.Connection) -> None:
    async with mcp() as client:
        paid = await call(client, "create_charge", **PAID)
        waiting = await call(client, "create_charge", customer_id="cus_w", idempotency_key="w", product_id="day_pass")
    events = [intent_event("payment_intent.succeeded", paid, event_id="evt_mismatch", amount=1),  # rejected
              intent_event("payment_intent.processing", waiting, event_id="evt_applied"),
              '{"id": "evt_unhandled", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}']  # fmt: skip
    for body in events:
        assert (await post_webhook(app, body, signed(body))).status_code == 200
    await db.execute("UPDATE webhook_events SET received_at = '2020-03-01 12:00Z' WHERE event_id = 'evt_mismatch'")
    password = await new_operator(app.services, "vic", "viewer")
    async with console_client(app, "vic", password) as console:

        async def listed(query: str) -> str:
            answer = await console.get(f"/console/inbox{query}")
            assert answer.status_code == 200, answer.text[:1000]
            return visible_text(answer.text)

        default = await listed("")
        assert default.index("evt_mismatch") < default.index("evt_applied")  # the older problem first
        assert "evt_unhandled" not in default and "amount" in default  # no-action hidden; the problem's note shown
        by_type = await listed("?event_type=payment_intent.processing")
        assert "evt_applied" in by_type and "evt_mismatch" not in by_type
        that_day = await listed("?date_from=2020-03-01&date_to=2020-03-01")
        assert "evt_mismatch" in that_day and "evt_applied" not in that_day
        assert "No events." in await listed("?date_to=2020-02-29")
        assert "evt_unhandled" in await listed("?outcome=all&event_type=customer.created")
        problems = await listed("?outcome=problems")
        assert "evt_mismatch" in problems and "evt_applied" not in problems


async def test_the_approvals_page_links_the_earlier_payment_a_repeat_repeats(app, mcp) -> None:
    async with mcp() as client:
        first = await call(client, "create_charge", **PAID)
        repeat = await call(client, "create_charge", **{**PAID, "idempotency_key": "paid-2"})
    assert repeat["status"] == "requires_approval"
    password = await new_operator(app.services, "vic", "viewer")
    async with console_client(app, "vic", password) as console:
        queue = await console.get("/console/approvals")
    assert repeat["payment_id"] in queue.text
    assert f'<a href="/console/payments/{first["payment_id"]}">{first["payment_id"]}</a> (succeeded)' in queue.text
    assert f"the same charge was already made at {first['created_at'][:10]}" in visible_text(queue.text)


async def test_a_payments_page_shows_the_inbox_events_and_what_it_granted(app, mcp) -> None:
    async with mcp() as client:
        pro = await call(client, "create_charge", **PAID)
        tokens = await call(client, "create_charge", **{**PAID, "customer_id": "cus_ai", "product_id": "credits_100k"})
    body = intent_event("payment_intent.succeeded", pro, event_id="evt_about_pro", amount=1)
    await post_webhook(app, body, signed(body))
    password = await new_operator(app.services, "vic", "viewer")
    async with console_client(app, "vic", password) as console:
        pro_page = visible_text((await console.get(f"/console/payments/{pro['payment_id']}")).text)
        tokens_page = visible_text((await console.get(f"/console/payments/{tokens['payment_id']}")).text)
    events = pro_page[pro_page.index("Webhook events") : pro_page.index("Entitlements granted")]
    assert "evt_about_pro" in events and "payment_intent.succeeded rejected" in events
    granted = pro_page[pro_page.index("Entitlements granted") : pro_page.index("Credits granted")]
    assert re.search(r"pro \S+ \S+ UTC \S+ \S+ UTC granted", granted), granted
    assert "evt_about_pro" not in tokens_page  # only the events about that payment
    credits = tokens_page[tokens_page.index("Credits granted") :]
    assert "llm_tokens 100000 0 0 0" in credits, credits
