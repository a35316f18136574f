"""The HTTP API at /v1 against the MCP tools it mirrors: same answers, same refusals, same keys, scopes
and tenants; problem+json for every error; every response checked against /openapi.json (api_client)."""

from __future__ import annotations

import asyncio

import httpx

from tests.helpers import (
    api_client,
    assert_problem,
    call,
    call_error,
    click,
    eventually,
    http_client,
    key_id,
    local_http,
    new_key,
)

VISA = "pm_card_visa"


async def charge(http: httpx.AsyncClient, key: str, **body) -> httpx.Response:
    return await http.post("/v1/charges", json=body, headers={"Idempotency-Key": key})


async def test_a_charge_and_its_lookups_answer_as_the_tools_do(app, mcp, api_key):
    async with api_client(app.base_url, api_key) as http, mcp() as client:
        created = await charge(http, "k-1", customer_id="alice", product_id="pro_monthly", payment_method=VISA)
        assert created.status_code == 201 and "Idempotent-Replayed" not in created.headers
        paid = created.json()
        assert paid["status"] == "succeeded" and paid["replayed"] is False
        by_tool = await call(client, "create_charge", customer_id="alice", idempotency_key="k-2",
                             product_id="pro_monthly", payment_method=VISA)  # fmt: skip
        assert set(by_tool) == set(paid)

        shown = (await http.get(f"/v1/charges/{paid['payment_id']}")).json()
        assert shown == await call(client, "get_payment", payment_id=paid["payment_id"])
        page = (await http.get("/v1/charges", params={"customer_id": "alice", "limit": 1})).json()
        assert page == await call(client, "list_payments", customer_id="alice", limit=1)
        assert page["next_cursor"] is not None
        rest = (await http.get("/v1/charges", params={"customer_id": "alice", "cursor": page["next_cursor"]})).json()
        assert len(rest["payments"]) == 1

        answer = (await http.get("/v1/customers/alice/entitlements/pro")).json()
        assert answer == await call(client, "check_entitlement", customer_id="alice", feature="pro")
        assert answer["allowed"] is True
        nobody = (await http.get("/v1/customers/bob/entitlements/pro", params={"quantity": 1})).json()
        assert nobody["allowed"] is False and nobody["offers"]


async def test_saving_a_card_and_the_customer_over_http(app, mcp, api_key):
    async with api_client(app.base_url, api_key) as http, mcp() as client:
        refused = await http.post(  # opens an empty credit account: no record of carol
            "/v1/credits/consumptions", headers={"Idempotency-Key": "c1"},
            json={"customer_id": "carol", "feature": "llm_tokens", "quantity": 1},
        )  # fmt: skip
        assert refused.status_code == 402
        unknown = await http.get("/v1/customers/carol")
        assert unknown.status_code == 404 and unknown.json()["code"] == "customer_not_found"
        slashed = await http.post("/v1/charges", headers={"Idempotency-Key": "c9"},
                                  json={"customer_id": "team/alice", "product_id": "pro_monthly"})  # fmt: skip
        assert slashed.status_code == 422 and "'/'" in slashed.json()["detail"], slashed.text  # a path segment
        stray = await http.post("/v1/customers/carol/payment_method_setups", headers={"Idempotency-Key": "s0"},
                                json={"x": 1})  # fmt: skip
        assert stray.status_code == 422 and stray.json()["code"] == "unknown_parameter", stray.text
        setup = await http.post("/v1/customers/carol/payment_method_setups", headers={"Idempotency-Key": "s1"})
        again = await http.post("/v1/customers/carol/payment_method_setups", headers={"Idempotency-Key": "s1"})
        assert setup.status_code == 201 and setup.json()["status"] == "requires_action"
        assert again.headers["Idempotent-Replayed"] == "true" and again.json()["setup_id"] == setup.json()["setup_id"]
        await click(setup.json()["setup_url"], "Save pm_card_visa")
        shown = await eventually(lambda: _with_a_card(http, "carol"))
        assert shown == await call(client, "get_customer", customer_id="carol")
        paid = await charge(http, "k-1", customer_id="carol", product_id="day_pass", payment_method="saved")
        assert paid.status_code == 201 and paid.json()["status"] == "succeeded"


async def _with_a_card(http: httpx.AsyncClient, customer_id: str) -> dict | None:
    view = (await http.get(f"/v1/customers/{customer_id}")).json()
    return view if view["payment_methods"] else None


async def test_idempotency_key_replays_refuses_a_different_body_and_a_missing_key(app, api_key):
    async with api_client(app.base_url, api_key) as http:
        first = await charge(http, "same", customer_id="alice", product_id="pro_monthly", payment_method=VISA)
        again = await charge(http, "same", customer_id="alice", product_id="pro_monthly", payment_method=VISA)
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["payment_id"] == first.json()["payment_id"] and again.json()["replayed"] is True
        other = await charge(http, "same", customer_id="alice", product_id="pro_yearly", payment_method=VISA)
        problem = assert_problem(other, 409, "idempotency_key_reused", "Idempotency-Key")
        assert "product_id (was 'pro_monthly', now 'pro_yearly')" in problem["detail"]
        missing = await http.post("/v1/charges", json={"customer_id": "alice", "product_id": "pro_monthly"})
        assert_problem(missing, 422, "invalid_parameter", "Idempotency-Key")


async def test_fifty_concurrent_posts_with_one_key_make_one_charge(app, api_key, db):
    body = {"customer_id": "carol", "product_id": "pro_monthly", "payment_method": VISA}
    async with api_client(app.base_url, api_key) as http:
        answers = await asyncio.gather(*(charge(http, "fifty", **body) for _ in range(50)))
    done = [answer for answer in answers if answer.status_code == 201]
    for answer in answers:
        if answer.status_code != 201:
            assert_problem(answer, 409, "request_in_progress")
            assert answer.headers["Retry-After"]
    assert done and len({answer.json()["payment_id"] for answer in done}) == 1
    assert sum(answer.headers.get("Idempotent-Replayed") != "true" for answer in done) <= 1
    assert await db.fetchval("SELECT count(*) FROM payments WHERE customer_id = 'carol'") == 1
    assert await db.fetchval("SELECT count(*) FROM sandbox.payment_intents") == 1


async def test_a_charge_that_needs_approval_answers_202(app, api_key):
    async with api_client(app.base_url, api_key) as http:
        held = await charge(http, "big", customer_id="dave", amount_minor=9000, currency="USD", payment_method=VISA)
        assert held.status_code == 202 and held.json()["status"] == "requires_approval"
        replay = await charge(http, "big", customer_id="dave", amount_minor=9000, currency="USD", payment_method=VISA)
        assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"


async def test_a_charge_over_the_keys_budget_is_refused_as_the_tool_refuses_it(app, database_url, db):
    key = await new_key(database_url, budget_minor=5000, budget_currency="USD")
    thirty = {"amount_minor": 3000, "currency": "USD", "payment_method": VISA}
    async with api_client(app.base_url, key) as http, http_client(f"{app.base_url}/mcp", key) as client:
        assert (await charge(http, "first", customer_id="erin", **thirty)).status_code == 201
        over = await charge(http, "second", customer_id="erin", **thirty)
        by_tool = await call_error(client, "create_charge", customer_id="erin", idempotency_key="third", **thirty)
    problem = assert_problem(over, 403, "spend_limit_exceeded")
    assert "would take this API key over the 24-hour budget of 50.00 USD" in problem["detail"]
    assert problem["detail"] in by_tool  # the same words as the agent reads
    assert await db.fetchval("SELECT count(*) FROM payments") == 1


async def test_the_audit_of_an_http_charge_names_its_key(app, api_key, db):
    async with api_client(app.base_url, api_key) as http:
        paid = (await charge(http, "k", customer_id="frank", product_id="pro_monthly", payment_method=VISA)).json()
    audit = await db.fetch("SELECT actor, api_key_id FROM payment_audit WHERE payment_id = $1", paid["payment_id"])
    by_key = [row for row in audit if row["api_key_id"] is not None]
    assert by_key and {(row["actor"], row["api_key_id"]) for row in by_key} == {("agent", await key_id(db, api_key))}


async def test_refunds_and_credits_over_http(app, api_key, mcp):
    async with api_client(app.base_url, api_key) as http, mcp() as client:
        bought = await charge(http, "c-1", customer_id="erin", product_id="credits_100k", payment_method=VISA)
        headers = {"Idempotency-Key": "r-1"}
        body = {"customer_id": "erin", "feature": "llm_tokens", "quantity": 3000}
        reserved = await http.post("/v1/credits/reservations", json=body, headers=headers)
        assert reserved.status_code == 201 and reserved.json()["balance"]["reserved"] == 3000
        rsv = reserved.json()["reservation_id"]
        settled = await http.post(f"/v1/credits/reservations/{rsv}/settle", json={"used_quantity": 1000})
        assert settled.status_code == 200 and settled.json()["balance"]["used"] == 1000
        settled_again = await http.post(f"/v1/credits/reservations/{rsv}/settle", json={"used_quantity": 1000})
        assert settled_again.headers["Idempotent-Replayed"] == "true"
        other = await http.post(f"/v1/credits/reservations/{rsv}/settle", json={"used_quantity": 5})
        assert_problem(other, 409, "not_allowed_now")
        second = await http.post("/v1/credits/reservations", json=body, headers={"Idempotency-Key": "r-2"})
        released = await http.post(f"/v1/credits/reservations/{second.json()['reservation_id']}/release")
        assert released.status_code == 200 and released.json()["status"] == "released"
        consumed = await http.post(
            "/v1/credits/consumptions", json={**body, "quantity": 500}, headers={"Idempotency-Key": "u-1"}
        )
        assert consumed.status_code == 201 and consumed.json()["balance"]["used"] == 1500
        too_much = await http.post(
            "/v1/credits/consumptions", json={**body, "quantity": 10**9}, headers={"Idempotency-Key": "u-2"}
        )
        assert_problem(too_much, 402, "insufficient_credits")
        assert "Not enough llm_tokens" in too_much.json()["detail"]
        by_tool = await call(client, "check_entitlement", customer_id="erin", feature="llm_tokens", quantity=3000)
        by_http = await http.get("/v1/customers/erin/entitlements/llm_tokens", params={"quantity": 3000})
        assert by_http.json() == by_tool

        payment_id = bought.json()["payment_id"]
        part = await http.post(
            f"/v1/charges/{payment_id}/refunds", json={"amount_minor": 100}, headers={"Idempotency-Key": "f-1"}
        )
        assert part.status_code == 201 and part.json()["payment"]["status"] == "partially_refunded"
        rest = await http.post(f"/v1/charges/{payment_id}/refunds", headers={"Idempotency-Key": "f-2"})
        assert rest.json()["payment"]["status"] == "refunded"
        nothing = await http.post(f"/v1/charges/{payment_id}/refunds", headers={"Idempotency-Key": "f-3"})
        assert_problem(nothing, 409, "not_allowed_now")


async def test_keys_scopes_and_tenants(app, database_url, api_key):
    reader = await new_key(database_url, scopes=("read",))
    other_tenant = await new_key(database_url, tenant_id="acme")
    async with api_client(app.base_url, api_key) as http:
        paid = (await charge(http, "t-1", customer_id="alice", product_id="pro_monthly", payment_method=VISA)).json()
    async with api_client(app.base_url, None) as http:
        assert_problem(await http.get("/v1/customers/alice/entitlements/pro"), 401, "unauthenticated")
        wrong = await http.get("/v1/charges/" + paid["payment_id"], headers={"Authorization": "Bearer pwk_nope"})
        assert_problem(wrong, 401, "invalid_key")
        assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    async with api_client(app.base_url, reader) as http:
        assert (await http.get(f"/v1/charges/{paid['payment_id']}")).status_code == 200
        refused = await charge(http, "t-2", customer_id="alice", product_id="pro_monthly")
        assert "lacks the 'charge' scope" in assert_problem(refused, 403, "missing_scope")["detail"]
        assert_problem(await http.get("/v1/webhook_endpoints"), 403, "missing_scope")
    async with api_client(app.base_url, other_tenant) as http:
        hidden = await http.get(f"/v1/charges/{paid['payment_id']}")
        assert_problem(hidden, 404, "payment_not_found")
        refund = await http.post(f"/v1/charges/{paid['payment_id']}/refunds", headers={"Idempotency-Key": "x"})
        assert_problem(refund, 404, "payment_not_found")
        assert (await http.get("/v1/customers/alice/entitlements/pro")).json()["allowed"] is False
        assert (await http.get("/v1/charges", params={"customer_id": "alice"})).json()["payments"] == []


async def test_malformed_requests_are_problems_naming_the_parameter(app, api_key):
    async with api_client(app.base_url, api_key) as http:
        key = {"Idempotency-Key": "m-1"}
        bad_amount = await http.post("/v1/charges", json={"customer_id": "a", "amount_minor": "5"}, headers=key)
        assert_problem(bad_amount, 422, "invalid_parameter", "amount_minor")
        extra = await http.post("/v1/charges", json={"customer_id": "a", "amount": 5}, headers=key)
        assert_problem(extra, 422, "unknown_parameter", "amount")
        query = await http.get("/v1/charges", params={"customer_id": "a", "state": "failed"})
        assert (
            "it takes: cursor, customer_id, limit, status" in assert_problem(query, 422, "unknown_parameter")["detail"]
        )
        assert_problem(await http.get("/v1/charges/not-a-payment"), 422, "invalid_parameter", "payment_id")
        assert_problem(await http.get("/v1/charges", params={"customer_id": "a", "limit": 0}), 422, "invalid_parameter")
        both = await charge(http, "m-2", customer_id="a", product_id="pro_monthly", amount_minor=5, currency="USD")
        assert_problem(both, 400, "invalid_request")
        unknown = await charge(http, "m-3", customer_id="a", product_id="platinum")
        assert_problem(unknown, 400, "unknown_product", "product_id")
        cursor = await http.get("/v1/charges", params={"customer_id": "a", "cursor": "garbage"})
        assert_problem(cursor, 400, "invalid_request", "cursor")
        not_json = await http.post(
            "/v1/charges", content=b"customer_id=a", headers={**key, "Content-Type": "text/plain"}
        )
        assert_problem(not_json, 415, "unsupported_media_type")
        broken = await http.post("/v1/charges", content=b"{", headers={**key, "Content-Type": "application/json"})
        assert_problem(broken, 400, "malformed_json")
        huge = {"customer_id": "a", "product_id": "pro_monthly", "description": "x" * 70_000}
        assert_problem(await http.post("/v1/charges", json=huge, headers=key), 413, "payload_too_large")
        assert_problem(await http.delete("/v1/charges"), 405, "method_not_allowed")
        assert_problem(await http.get("/v1/refunds"), 404, "not_found")


async def test_the_rate_limit_is_shared_with_mcp_and_answers_429(app, database_url):
    key = await new_key(database_url, rate_per_minute=2)
    async with api_client(app.base_url, key) as http:
        for _ in range(2):
            assert (await http.get("/v1/customers/a/entitlements/pro")).status_code == 200
        limited = await http.get("/v1/customers/a/entitlements/pro")
        problem = assert_problem(limited, 429, "rate_limited")
        assert int(limited.headers["Retry-After"]) == problem["retry_after_seconds"] >= 1
        mcp_too = await http.post("/mcp", json={}, headers={"Accept": "application/json, text/event-stream"})
        assert mcp_too.status_code == 429


async def test_the_openapi_document_describes_the_api(app):
    async with local_http(base_url=app.base_url) as http:
        spec = (await http.get("/openapi.json")).json()
        docs = await http.get("/docs")
        static = await http.get("/docs/static/swagger-ui-bundle.js")
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == {
        "/v1/charges",
        "/v1/charges/{payment_id}",
        "/v1/charges/{payment_id}/refunds",
        "/v1/customers/{customer_id}/entitlements/{feature}",
        "/v1/customers/{customer_id}",
        "/v1/customers/{customer_id}/payment_method_setups",
        "/v1/credits/reservations",
        "/v1/credits/reservations/{reservation_id}/settle",
        "/v1/credits/reservations/{reservation_id}/release",
        "/v1/credits/consumptions",
        "/v1/subscriptions",
        "/v1/subscriptions/{subscription_id}",
        "/v1/subscriptions/{subscription_id}/change",
        "/v1/subscriptions/{subscription_id}/cancel",
        "/v1/webhook_endpoints",
        "/v1/webhook_endpoints/{endpoint_id}",
    }
    create = spec["paths"]["/v1/charges"]["post"]
    assert {"201", "202", "401", "403", "409", "413", "415", "422", "429"} <= set(create["responses"])
    assert create["responses"]["409"]["content"]["application/problem+json"]["schema"]["$ref"].endswith("/Problem")
    assert spec["components"]["schemas"]["ChargeBody"]["additionalProperties"] is False
    assert "paywarden-event" in spec["webhooks"]
    assert docs.status_code == 200 and "/openapi.json" in docs.text and static.status_code == 200
