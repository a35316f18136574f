"""Who may spend: API keys on the HTTP MCP endpoint, scopes, tenant isolation, Host checks, rate limits,
per-key budgets. Everything over real HTTP against `paywarden up`'s app, with keys as an operator makes them."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from cli.running import banner
from server import api_keys
from server.config import Settings
from tests.helpers import (
    WEBHOOK_SECRET,
    call,
    call_error,
    eventually,
    http_client,
    intent_event,
    key_id,
    local_http,
    new_key,
    paywarden_command,
    running_app,
    signed,
)

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
PAID = {"product_id": "pro_monthly", "payment_method": "pm_card_visa"}
PAID_LATER = {"product_id": "pro_monthly"}  # no payment method: waits for the person (requires_action)
TENANT_A_SECRET = "whsec_tenantAsigningSecret0123456789abc"  # as long as Stripe's: 32 characters or more
ACME_SECRET = "whsec_acmeSigningSecret0123456789abcdef"
TEN_DOLLARS = {"amount_minor": 1000, "currency": "USD", "payment_method": "pm_card_visa"}


async def post_mcp(app, key: str | None = None, **headers: str) -> httpx.Response:
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    async with local_http() as http:
        return await http.post(f"{app.base_url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **auth, **headers})


def tokens(quantity: int, key: str, customer: str = "cus_shared") -> dict:
    return {"customer_id": customer, "feature": "llm_tokens", "quantity": quantity, "idempotency_key": key}


async def test_no_key_gets_401_with_where_to_learn_about_the_resource(app) -> None:
    answer = await post_mcp(app)
    assert answer.status_code == 401
    challenge = answer.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer") and "resource_metadata=" in challenge
    async with local_http() as http:
        metadata = (await http.get(f"{app.base_url}/.well-known/oauth-protected-resource/mcp")).json()
    assert metadata["resource"] == f"{app.base_url}/mcp"


async def test_a_wrong_key_or_a_revoked_one_gets_401(app, database_url: str, db: asyncpg.Connection) -> None:
    key = await new_key(database_url)
    assert (await post_mcp(app, key)).status_code == 200
    assert (await post_mcp(app, key[:-2] + "xx")).status_code == 401
    assert (await post_mcp(app, "sk_test_not_a_paywarden_key")).status_code == 401
    assert (await post_mcp(app, "pwk_" + "a" * 5000)).status_code == 401

    code, out = await paywarden_command(database_url, "keys", "revoke", await key_id(db, key))
    assert code == 0 and "revoked" in out
    refused = await post_mcp(app, key)
    assert refused.status_code == 401 and key not in refused.text


async def test_each_tool_needs_its_scope_and_says_which(app, database_url: str) -> None:
    reader = await new_key(database_url, scopes=("read",))
    charger = await new_key(database_url, scopes=("charge",))
    async with http_client(f"{app.base_url}/mcp", charger) as client:
        paid = await call(client, "create_charge", customer_id="cus_s", idempotency_key="s1", **PAID)
        for tool, arguments in [
            ("get_payment", {"payment_id": paid["payment_id"]}),
            ("list_payments", {"customer_id": "cus_s"}),
            ("check_entitlement", {"customer_id": "cus_s", "feature": "pro"}),
            ("refund_payment", {"payment_id": paid["payment_id"], "idempotency_key": "r1"}),
        ]:
            scope = "refund" if tool == "refund_payment" else "read"
            assert f"lacks the '{scope}' scope" in await call_error(client, tool, **arguments)
    async with http_client(f"{app.base_url}/mcp", reader) as client:
        for tool, arguments in [
            ("create_charge", {"customer_id": "cus_s", "idempotency_key": "s2", **PAID}),
            ("reserve_credits", tokens(1, "x", "cus_s")),
            ("consume_credits", tokens(1, "y", "cus_s")),
            ("settle_reservation", {"reservation_id": "rsv_x", "used_quantity": 1}),
            ("release_reservation", {"reservation_id": "rsv_x"}),
        ]:
            assert "lacks the 'charge' scope" in await call_error(client, tool, **arguments)
        assert (await call(client, "get_payment", payment_id=paid["payment_id"]))["status"] == "succeeded"


async def test_a_key_is_shown_only_the_tools_its_scopes_allow(app, database_url: str) -> None:
    from tools.server import TOOL_SCOPES

    for scopes in [("read",), ("charge",), ("refund",), ("read", "refund")]:
        async with http_client(f"{app.base_url}/mcp", await new_key(database_url, scopes=scopes)) as client:
            listed = {tool.name for tool in (await client.list_tools()).tools}
        assert listed == {tool for tool, scope in TOOL_SCOPES.items() if scope in scopes}


async def test_another_tenant_can_neither_see_nor_touch_anything(app, database_url: str, db) -> None:
    """Tenant B guesses tenant A's ids and customer ids, tool by tool: every answer is what B would get
    for ids that exist nowhere, and nothing of A's changes."""
    a_key = await new_key(database_url, tenant_id="tenant-a")
    b_key = await new_key(database_url, tenant_id="tenant-b")
    async with http_client(f"{app.base_url}/mcp", a_key) as a:
        charge = await call(a, "create_charge", customer_id="cus_shared", idempotency_key="k1", **PAID)
        await call(a, "create_charge", **{**PAID, "customer_id": "cus_shared", "idempotency_key": "k2",
                                          "product_id": "credits_100k"})  # fmt: skip
        held = await call(a, "reserve_credits", **tokens(10, "k3"))
    before = await _tenant_a_state(db)

    async with http_client(f"{app.base_url}/mcp", b_key) as b:
        for tool, known, unknown in [
            ("get_payment", {"payment_id": charge["payment_id"]}, {"payment_id": "pay_" + "0" * 24}),
            (
                "refund_payment",
                {"payment_id": charge["payment_id"], "idempotency_key": "r"},
                {"payment_id": "pay_" + "0" * 24, "idempotency_key": "r"},
            ),
            (
                "settle_reservation",
                {"reservation_id": held["reservation_id"], "used_quantity": 1},
                {"reservation_id": "rsv_" + "0" * 24, "used_quantity": 1},
            ),
            ("release_reservation", {"reservation_id": held["reservation_id"]}, {"reservation_id": "rsv_" + "0" * 24}),
        ]:
            guessed = await call_error(b, tool, **known)
            made_up = await call_error(b, tool, **unknown)
            assert _without_ids(guessed) == _without_ids(made_up), tool
        assert (await call(b, "list_payments", customer_id="cus_shared"))["payments"] == []
        entitlement = await call(b, "check_entitlement", customer_id="cus_shared", feature="pro")
        assert (entitlement["allowed"], entitlement["reason"]) == (False, "no_entitlement")
        metered = await call(b, "check_entitlement", customer_id="cus_shared", feature="llm_tokens", quantity=1)
        assert metered["allowed"] is False and metered["balance"]["granted"] == 0
        for tool in ("reserve_credits", "consume_credits"):
            refused = await call_error(b, tool, **tokens(1, "k3"))
            assert "Not enough llm_tokens for customer 'cus_shared': 0 remaining" in refused
        own = await call(b, "create_charge", customer_id="cus_shared", idempotency_key="k1", **PAID)
        assert own["replayed"] is False and own["payment_id"] != charge["payment_id"]

    assert await _tenant_a_state(db) == before


async def _tenant_a_state(db: asyncpg.Connection) -> list:
    return [
        [tuple(row) for row in await db.fetch(query)]
        for query in (
            "SELECT id, status, refunded_minor FROM payments WHERE tenant_id = 'tenant-a' ORDER BY id",
            "SELECT granted, used, reserved FROM credit_accounts WHERE tenant_id = 'tenant-a'",
            "SELECT id, status FROM credit_reservations WHERE tenant_id = 'tenant-a'",
            "SELECT count(*) FROM refunds",
        )
    ]


def _without_ids(message: str) -> str:
    import re

    return re.sub(r"(pay|rsv)_[0-9a-f]+", "ID", message)


async def test_a_forged_host_or_origin_is_refused(app, api_key: str) -> None:
    assert (await post_mcp(app, api_key, Host="evil.example")).status_code == 421
    assert (await post_mcp(app, api_key, Host=f"evil.example:{app.settings.port}")).status_code == 421
    assert (await post_mcp(app, api_key, Origin="http://evil.example")).status_code == 403
    assert (await post_mcp(app, api_key, Host=f"localhost:{app.settings.port}")).status_code == 200
    port = app.settings.port
    smuggled_hosts = (f"127.0.0.1:{port}@evil.com", f"127.0.0.1:{port}.evil.com", f"127.0.0.1:{port + 1}",
                      f"localhost:{port}x")  # fmt: skip
    for smuggled in smuggled_hosts:
        assert (await post_mcp(app, api_key, Host=smuggled)).status_code in (400, 421), smuggled
    assert (await post_mcp(app, api_key, Origin=f"http://127.0.0.1:{port}@evil.com")).status_code == 403
    another_local_app = f"http://localhost:{port + 1}"  # a web page served by something else on this machine
    assert (await post_mcp(app, api_key, Origin=another_local_app)).status_code == 403
    assert (await post_mcp(app, api_key, Origin=f"http://localhost:{port}")).status_code == 200


async def test_no_key_can_hold_a_get_stream_open(app, api_key: str) -> None:
    """Stateless /mcp offers no standalone GET stream (the spec allows 405): nothing to hold open."""
    async with local_http(timeout=5) as http:
        answer = await http.get(
            f"{app.base_url}/mcp", headers={"Authorization": f"Bearer {api_key}", "Accept": "text/event-stream"}
        )
    assert answer.status_code == 405 and "POST" in answer.headers["Allow"]


async def test_an_address_sending_wrong_keys_is_paused(app, api_key: str) -> None:
    answers = [(await post_mcp(app, f"pwk_wrong_{n}")).status_code for n in range(12)]
    assert answers[:10] == [401] * 10 and answers[10:] == [429, 429]
    assert (await post_mcp(app, api_key)).status_code == 429  # from that address, for a minute


async def test_metrics_can_require_a_token(settings, listening_socket) -> None:
    guarded = settings.model_copy(update={"metrics_token": SecretStr("scrape-me-please")})
    async with running_app(guarded, listening_socket), local_http(base_url=guarded.base_url) as http:
        refused = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        scraped = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me-please"})
    assert (refused.status_code, wrong.status_code, scraped.status_code) == (401, 401, 200)
    assert "paywarden_tool_calls_total" in scraped.text


async def test_the_sandbox_trusts_no_forwarded_request(app) -> None:
    """A proxy on this machine would make every caller look local: a forwarded request is refused, key or not."""
    right = {"Authorization": f"Bearer {app.services.sandbox.api_key}"}
    async with local_http(base_url=f"{app.base_url}/sandbox") as http:
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
            forwarded = await http.get("/v1/events", headers={**right, header: "203.0.113.9"})
            assert forwarded.status_code == 403, header
        assert (await http.get("/v1/events", headers=right)).status_code == 200


async def test_allowed_hosts_are_configurable(settings: Settings, listening_socket, api_key: str) -> None:
    public = settings.model_copy(update={"allowed_hosts": "pay.example.com"})
    async with running_app(public, listening_socket):
        base = f"http://127.0.0.1:{public.port}"
        async with local_http() as http:
            auth = {**MCP_HEADERS, "Authorization": f"Bearer {api_key}"}
            allowed = await http.post(f"{base}/mcp", json=INITIALIZE, headers={**auth, "Host": "pay.example.com"})
            other = await http.post(f"{base}/mcp", json=INITIALIZE, headers={**auth, "Host": "evil.example"})
    assert (allowed.status_code, other.status_code) == (200, 421)


async def test_each_key_has_its_own_rate_limit(app, database_url: str) -> None:
    slow = await new_key(database_url, rate_per_minute=3)
    other = await new_key(database_url, rate_per_minute=3)
    answers = await asyncio.gather(*(post_mcp(app, slow) for _ in range(6)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 200, 200, 429, 429, 429]
    limited = next(answer for answer in answers if answer.status_code == 429)
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert "retry after" in limited.json()["error"]
    assert (await post_mcp(app, other)).status_code == 200


async def test_a_key_budget_holds_under_concurrency(app, database_url: str, db) -> None:
    """Twenty concurrent $10 charges for twenty customers on a key with a $50 budget: exactly five go through."""
    key = await new_key(database_url, budget_minor=5000, budget_currency="USD")
    async with http_client(f"{app.base_url}/mcp", key) as client:
        results = await asyncio.gather(
            *(
                client.call_tool("create_charge", {**TEN_DOLLARS, "customer_id": f"c{n}", "idempotency_key": f"b{n}"})
                for n in range(20)
            )
        )
    refused = [result.content[0].text for result in results if result.is_error]
    assert len(refused) == 15
    assert all("would take this API key over the 24-hour budget of 50.00 USD" in text for text in refused), refused[0]
    charged = await db.fetchval("SELECT sum(amount_minor) FROM payments WHERE api_key_id = $1", await key_id(db, key))
    assert charged == 5000
    async with http_client(f"{app.base_url}/mcp", key) as client:  # one budget, not one per currency
        other = await call_error(client, "create_charge", **{**TEN_DOLLARS, "currency": "EUR", "customer_id": "e",
                                                             "idempotency_key": "e"})  # fmt: skip
    assert "this API key's budget is in USD; it cannot charge EUR" in other


async def test_audit_rows_record_the_key(app, database_url: str, db) -> None:
    key = await new_key(database_url)
    async with http_client(f"{app.base_url}/mcp", key) as client:
        paid = await call(client, "create_charge", customer_id="cus_audit", idempotency_key="a1", **PAID)
        await call(client, "refund_payment", payment_id=paid["payment_id"], idempotency_key="r1")
        details = await call(client, "get_payment", payment_id=paid["payment_id"])
    by_agent = await db.fetch("SELECT api_key_id FROM payment_audit WHERE actor = 'agent'")
    assert len(by_agent) == 2 and {row["api_key_id"] for row in by_agent} == {await key_id(db, key)}
    assert details["timeline"][0]["api_key_id"] == await key_id(db, key)


async def test_keys_are_shown_once_and_stored_as_a_hash(app, database_url: str, db) -> None:
    code, out = await paywarden_command(
        database_url, "keys", "create", "--tenant", "acme", "--name", "support bot", "--scopes", "read,refund"
    )
    assert code == 0, out
    secret = next(line.strip() for line in out.splitlines() if line.strip().startswith("pwk_"))
    assert "created tenant 'acme'" in out
    stored = await db.fetchrow("SELECT * FROM api_keys WHERE tenant_id = 'acme'")
    assert secret not in json.dumps({name: str(value) for name, value in stored.items()})
    assert stored["scopes"] == ["read", "refund"]

    code, listed = await paywarden_command(database_url, "keys", "list", "--tenant", "acme")
    assert code == 0 and stored["id"] in listed and secret not in listed and "scopes=read,refund" in listed

    async with http_client(f"{app.base_url}/mcp", secret) as client:
        assert "lacks the 'charge' scope" in await call_error(
            client, "create_charge", customer_id="c", idempotency_key="k", **PAID
        )


@pytest.mark.parametrize(
    ("arguments", "stored", "printed"),
    [
        ((), "operator", "approvals by an operator"),
        (("--approval", "operator"), "operator", "approvals by an operator"),
        (("--approval", "client"), "client", "approvals by the person through the MCP client"),
    ],
    ids=["default", "operator", "client"],
)
async def test_keys_create_sets_who_approves_and_defaults_to_an_operator(
    database_url: str, db, arguments, stored: str, printed: str
) -> None:
    code, out = await paywarden_command(database_url, "keys", "create", "--tenant", "acme", "--name", "n", *arguments)
    assert code == 0 and printed in out, out
    assert await db.fetchval("SELECT approval FROM api_keys WHERE tenant_id = 'acme'") == stored
    code, listed = await paywarden_command(database_url, "keys", "list", "--tenant", "acme")
    assert code == 0 and f"approval={stored}" in listed


async def test_keys_create_refuses_an_unknown_approval_and_writes_nothing(database_url: str, db) -> None:
    creating = ("keys", "create", "--tenant", "acme", "--name", "n", "--approval", "agent")
    code, out = await paywarden_command(database_url, *creating)
    assert code != 0 and "--approval must be client or operator; got 'agent'" in out and "Traceback" not in out
    assert await db.fetchval("SELECT count(*) FROM api_keys") == 0


async def test_the_first_key_for_local_use_is_approved_by_the_client_and_only_once(services, db) -> None:
    first = await api_keys.issue_first_key(services, tenant_id="default")
    assert first is not None and first.key.approval == "client"
    assert await db.fetchval("SELECT approval FROM api_keys") == "client"
    assert await api_keys.issue_first_key(services, tenant_id="default") is None
    assert "approved by the person through your MCP client (client" in banner(services.settings, first.secret)


@pytest.mark.parametrize("scopes", ["", "read,write", "admin"])
async def test_keys_create_refuses_unknown_scopes(database_url: str, scopes: str) -> None:
    creating = ("keys", "create", "--tenant", "t", "--name", "n", "--scopes", scopes)
    code, out = await paywarden_command(database_url, *creating)
    assert code != 0 and "Scopes must be a comma-separated choice of read, charge, refund, webhooks" in out


async def test_webhooks_reach_the_right_tenant(app, database_url: str, db: asyncpg.Connection) -> None:
    """The platform endpoint routes by the payment an event names; a tenant's own endpoint, signed with
    its own secret, can touch only that tenant's payments."""
    keys = {tenant: await new_key(database_url, tenant_id=tenant) for tenant in ("tenant-a", "tenant-b")}
    code, out = await paywarden_command(database_url, "tenants", "webhook-secret", "tenant-a", TENANT_A_SECRET)
    assert code == 0, out
    waiting = {}
    for tenant, key in keys.items():
        async with http_client(f"{app.base_url}/mcp", key) as client:
            waiting[tenant] = await call(client, "create_charge", customer_id="c", idempotency_key="w", **PAID_LATER)

    async def deliver(path: str, payment: dict, event_id: str, secret: str) -> httpx.Response:
        body = intent_event("payment_intent.succeeded", payment, event_id=event_id)
        async with local_http(base_url=app.base_url) as http:
            return await http.post(path, content=body, headers=signed(body, secret))

    own = "/webhooks/stripe/tenant-a"
    crossing = await deliver(own, waiting["tenant-b"], "evt_b", TENANT_A_SECRET)  # one account: every endpoint
    assert crossing.status_code == 200 and crossing.json()["outcome"] == "not_for_tenant"  # gets every event
    assert (await deliver(own, waiting["tenant-a"], "evt_platform_secret", WEBHOOK_SECRET)).status_code == 400
    assert (await deliver(own, waiting["tenant-a"], "evt_a", TENANT_A_SECRET)).json()["outcome"] == "applied"
    for closed in ("/webhooks/stripe/tenant-b", "/webhooks/stripe/nobody"):
        assert (await deliver(closed, waiting["tenant-b"], "evt_closed", TENANT_A_SECRET)).status_code == 404
    assert (await deliver("/webhooks/stripe", waiting["tenant-b"], "evt_b", WEBHOOK_SECRET)).json()[
        "outcome"
    ] == "applied"

    statuses = dict(await db.fetch("SELECT tenant_id, status FROM payments"))
    assert statuses == {"tenant-a": "succeeded", "tenant-b": "succeeded"}
    ours = await db.fetch("SELECT event_id, tenant_id FROM webhook_events WHERE event_id = ANY($1)", ["evt_a", "evt_b"])
    stored = dict(ours)
    assert stored == {"evt_a": "tenant-a", "evt_b": "tenant-b"}  # the event tenant A's endpoint refused is B's


async def test_an_event_id_a_tenant_posts_first_cannot_shadow_the_platforms(app, database_url: str, db) -> None:
    """Tenant A, holding its own endpoint's secret, posts an event id first (about its own payment); the
    platform's real event of that id, about tenant B's payment, is still applied: ids are per endpoint."""
    keys = {tenant: await new_key(database_url, tenant_id=tenant) for tenant in ("tenant-a", "tenant-b")}
    code, out = await paywarden_command(database_url, "tenants", "webhook-secret", "tenant-a", TENANT_A_SECRET)
    assert code == 0, out
    waiting = {}
    for tenant, key in keys.items():
        async with http_client(f"{app.base_url}/mcp", key) as client:
            waiting[tenant] = await call(client, "create_charge", customer_id="c", idempotency_key="w", **PAID_LATER)
    processing = intent_event("payment_intent.processing", waiting["tenant-a"], event_id="evt_shared")
    real = intent_event("payment_intent.succeeded", waiting["tenant-b"], event_id="evt_shared")
    async with local_http(base_url=app.base_url) as http:
        first = await http.post(
            "/webhooks/stripe/tenant-a", content=processing, headers=signed(processing, TENANT_A_SECRET)
        )
        platform = await http.post("/webhooks/stripe", content=real, headers=signed(real, WEBHOOK_SECRET))
    assert first.json()["outcome"] == "applied" and platform.json()["outcome"] == "applied"
    assert dict(await db.fetch("SELECT tenant_id, status FROM payments")) == {
        "tenant-a": "processing",
        "tenant-b": "succeeded",
    }


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (("--tenant", "Bad Tenant!"), "A tenant id is 1-63 lowercase letters"),
        (("--tenant", "t2", "--budget-minor", "5000"), "A key budget needs both an amount in minor units"),
        (("--tenant", "t2", "--budget-minor", "5000", "--budget-currency", "XYZ"), "Unknown currency 'XYZ'"),
        (("--tenant", "t2", "--budget-minor", "0", "--budget-currency", "USD"), "--budget-minor must be a positive"),
        (
            ("--tenant", "t2", "--budget-minor", "99999999999999999999", "--budget-currency", "USD"),
            "--budget-minor must be a positive number of minor units, at most 999999999999",
        ),
        (("--tenant", "t2", "--rate-per-minute", "99999999999"), "--rate-per-minute must be positive and at most"),
    ],
)
async def test_keys_create_refuses_bad_input_and_writes_nothing(database_url: str, db, arguments, expected) -> None:
    code, out = await paywarden_command(database_url, "keys", "create", "--name", "n", *arguments)
    assert code == 1 and out.startswith(f"paywarden: {expected}") and "database refused" not in out
    assert await db.fetchval("SELECT count(*) FROM api_keys") == 0
    assert [row["id"] for row in await db.fetch("SELECT id FROM tenants")] == ["default"]


async def test_tenant_commands(app, database_url: str, db) -> None:
    assert (await paywarden_command(database_url, "tenants", "create", "acme", "--name", "Acme Inc."))[0] == 0
    code, again = await paywarden_command(database_url, "tenants", "create", "acme")
    assert code == 0 and "tenant 'acme' already exists" in again
    for bad, expected in [
        (("acme", "not_a_secret"), "A Stripe webhook secret starts with whsec_"),
        (
            ("acme", "whsec_abc"),
            "at least 32 letters and digits after it; one of those given has only 3 characters after",
        ),
        (("acme", f"{ACME_SECRET},whsec_abc"), "one of those given has only 3 characters after whsec_"),
        (("acme", f'{ACME_SECRET}"'), "a character after whsec_ that a signing secret does not (a stray quote?)"),
        (("acme", f"{ACME_SECRET},"), "one of those given is empty (a comma too many?)"),
        (("nobody", ACME_SECRET), "No tenant 'nobody'"),
        (("acme",), "Give the secret, or --remove"),
    ]:
        code, out = await paywarden_command(database_url, "tenants", "webhook-secret", *bad)
        assert code != 0 and expected in out
    assert (await paywarden_command(database_url, "tenants", "webhook-secret", "acme", ACME_SECRET))[0] == 0
    code, listed = await paywarden_command(database_url, "tenants", "list")
    assert "acme name='Acme Inc.' active_keys=0 own_webhook_endpoint=/webhooks/stripe/acme" in listed

    code, out = await paywarden_command(database_url, "tenants", "webhook-secret", "acme", "--remove")
    assert code == 0 and "is closed" in out
    body = intent_event("payment_intent.succeeded", {"provider_payment_id": "pi_x", "amount_minor": 1,
                        "currency": "USD", "payment_id": "pay_x"}, event_id="evt_closed")  # fmt: skip
    async with local_http(base_url=app.base_url) as http:
        closed = await http.post("/webhooks/stripe/acme", content=body, headers=signed(body, ACME_SECRET))
    assert closed.status_code == 404 and await db.fetchval("SELECT count(*) FROM webhook_events") == 0


async def test_the_reconciler_forgets_old_rate_limit_counts(app, database_url: str, db) -> None:
    from server.reconciler import reconcile_once

    key = await key_id(db, await new_key(database_url))
    await db.execute(
        "INSERT INTO api_key_usage (api_key_id, minute, calls) VALUES ($1, now() - interval '2 hours', 5),"
        " ($1, date_trunc('minute', now()), 1)",
        key,
    )
    await reconcile_once(app.services)
    assert await db.fetchval("SELECT count(*) FROM api_key_usage") == 1


async def test_a_revocation_reaches_a_process_that_caches_keys(app, database_url: str, db) -> None:
    """Keys are cached while the process hears revocations; a revocation made elsewhere (here: another
    connection, as `paywarden keys revoke` in another process would) drops it at once."""
    key = await new_key(database_url)
    assert (await post_mcp(app, key)).status_code == 200  # now cached
    assert app.services.keys.enabled
    await db.execute("BEGIN; UPDATE api_keys SET revoked_at = now(); SELECT pg_notify('paywarden_api_key_revoked', "
                     "(SELECT id FROM api_keys LIMIT 1)); COMMIT;")  # fmt: skip
    await eventually(lambda: _status_is(app, key, 401), within=2)


async def test_a_cache_that_stops_hearing_revocations_is_not_used(app, database_url: str, db) -> None:
    key = await new_key(database_url)
    assert (await post_mcp(app, key)).status_code == 200
    await db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE query LIKE 'LISTEN%' AND datname = current_database()"
    )
    await eventually(lambda: _false(app.services.keys.enabled), within=5)
    await db.execute("UPDATE api_keys SET revoked_at = now()")  # no notification at all
    assert (await post_mcp(app, key)).status_code == 401


async def test_money_never_moves_on_a_key_revoked_a_moment_ago(app, database_url: str, db) -> None:
    """Even while a cached key still opens /mcp (its revocation's notification not yet heard), the charge's
    own transaction finds the key revoked and refuses: money decisions come from the database."""
    key = await new_key(database_url)
    async with http_client(f"{app.base_url}/mcp", key) as client:
        await call(client, "check_entitlement", customer_id="c", feature="pro")  # cached now
        await db.execute("UPDATE api_keys SET revoked_at = now()")  # revoked without a notification
        refused = await call_error(client, "create_charge", customer_id="c", idempotency_key="k", **PAID)
    assert "The API key is not valid" in refused
    assert await db.fetchval("SELECT count(*) FROM payments") == 0


async def _status_is(app, key: str, status: int) -> bool:
    return (await post_mcp(app, key)).status_code == status


async def _false(value: bool) -> bool:
    return not value
