"""What an operator at the command line reads: plain words about payments, not advice meant for agents;
the webhook inbox with problems standing out; budgets written as amounts."""

from __future__ import annotations

import json
import logging
import os

import pytest
import stripe

from server import api_keys, logs
from server.embedded import _running
from server.providers.stripe import _safe_message
from server.services import open_services
from tests.helpers import (
    call,
    http_client,
    intent_event,
    key_id,
    local_http,
    new_key,
    paywarden_command,
    post_webhook,
    signed,
)

HELD = {"customer_id": "cus_op", "idempotency_key": "op-1", "amount_minor": 12_000, "currency": "USD"}


async def test_approve_prints_the_page_the_person_must_now_pay_on(app, mcp) -> None:
    async with mcp() as client:  # no payment method: once approved, the person pays on the hosted page
        held = await call(client, "create_charge", **HELD)
    code, out = await paywarden_command(
        app.settings.database_url, "approve", held["payment_id"], port=str(app.settings.port)
    )
    assert code == 0, out
    assert "now requires_action" in out and f"{app.base_url}/sandbox/checkout/cs_test_" in out


@pytest.mark.slow
async def test_operator_commands_speak_to_an_operator(app, mcp, database_url: str) -> None:
    async with mcp() as client:
        held = await call(client, "create_charge", **{**HELD, "payment_method": "pm_card_visa"})
    nobody = {"port": "1"}  # the provider cannot be reached
    code, approving = await paywarden_command(database_url, "approve", held["payment_id"], **nobody)
    code_reconcile, reconciling = await paywarden_command(database_url, "reconcile", **nobody)
    assert code == 1 and "The payment provider did not answer" in approving and "is it running?" in approving
    assert code_reconcile == 1 and "provider event list: the payment provider did not answer" in reconciling
    for said in (approving, reconciling):
        assert "idempotency_key" not in said and "Traceback" not in said


async def test_reject_and_webhooks_replay_speak_to_an_operator(app, mcp, database_url: str, db) -> None:
    async with mcp() as client:
        held = await call(client, "create_charge", **{**HELD, "payment_method": "pm_card_visa"})
        waiting = await call(client, "create_charge", customer_id="cus_w", idempotency_key="w", product_id="day_pass")
    paid = intent_event("payment_intent.succeeded", waiting, event_id="evt_op")
    await post_webhook(app, paid, signed(paid))
    await db.execute("UPDATE webhook_events SET outcome = 'failed', attempts = 1 WHERE event_id = 'evt_op'")
    nobody = {"port": "1"}  # the provider cannot be reached
    said = {}
    for name, args, settings in [
        ("unknown payment", ("reject", "pay_nope"), nobody),
        ("rejected", ("reject", held["payment_id"], "--by", "olga"), nobody),
        ("rejected again", ("reject", held["payment_id"]), nobody),
        ("unknown event", ("webhooks", "replay", "evt_nope"), nobody),
        ("unconfirmed", ("webhooks", "replay", "evt_op"), {**nobody, "webhook_confirm_with_provider": "true"}),
        ("listed", ("webhooks", "list", "--failed"), nobody),
    ]:
        said[name] = await paywarden_command(database_url, *args, **settings)
    assert said["unknown payment"] == (1, "paywarden: No payment with payment_id 'pay_nope'.\n")
    assert said["rejected"] == (0, f"{held['payment_id']} rejected by olga: now canceled\n")
    assert said["rejected again"][0] == 1 and "is canceled, not waiting for approval" in said["rejected again"][1]
    code, out = said["unknown event"]
    assert code == 1 and out.endswith("\nevt_nope: unknown (no stored event 'evt_nope')\n")
    assert said["unconfirmed"][0] == 1 and "evt_op: failed" in said["unconfirmed"][1]
    assert "error: could not confirm with the provider: the payment provider did not answer" in said["listed"][1]
    for _, out in said.values():
        assert "idempotency_key" not in out and "same key" not in out and "Traceback" not in out, out


async def test_webhooks_list_shows_problems_and_hides_what_needed_no_action(app, database_url: str) -> None:
    unhandled = json.dumps({"id": "evt_quiet", "type": "customer.created", "data": {"object": {}}})
    malformed = json.dumps({"id": 5, "type": "x"})
    for body in (unhandled, malformed):
        await post_webhook(app, body, signed(body))

    code, shown = await paywarden_command(database_url, "webhooks", "list")
    assert code == 0 and "evt_quiet" not in shown and "needed no action are hidden (--all shows them)" in shown
    problem = next(line for line in shown.splitlines() if "malformed_" in line)
    assert problem.startswith("PROBLEM ") and "rejected" in problem
    code, everything = await paywarden_command(database_url, "webhooks", "list", "--all")
    quiet = next(line for line in everything.splitlines() if "evt_quiet" in line)
    assert quiet.startswith("no action ") and "unhandled" in quiet
    code, problems = await paywarden_command(database_url, "webhooks", "list", "--problems")
    assert "malformed_" in problems and "evt_quiet" not in problems and "1 needing an operator" in problems


@pytest.mark.parametrize("limit", ["0", "-1", "99999999999999999999"])
@pytest.mark.parametrize("listing", [("webhooks", "list"), ("endpoints", "deliveries", "we_nope")])
async def test_a_listing_limit_out_of_range_is_refused_plainly(database_url: str, listing, limit) -> None:
    code, out = await paywarden_command(database_url, *listing, "--limit", limit)
    assert (code, out) == (1, f"paywarden: --limit must be from 1 to 10000; got {limit}.\n")


@pytest.mark.parametrize(
    ("command", "settings", "said"),
    [
        (("up", "--port", "99999"), {}, ["--port must be at most 65535; got 99999."]),
        (("mcp",), {"port": "http"}, ["PAYWARDEN_PORT must be a whole number; got 'http'."]),
        (
            ("keys", "list"),
            {"provider": "paypal", "approval_expiry_hours": "0", "secret_key": "short-and-secret"},
            [
                "PAYWARDEN_PROVIDER must be 'sandbox' or 'stripe'; got 'paypal'.",
                "PAYWARDEN_APPROVAL_EXPIRY_HOURS must be more than 0; got '0'.",
                "PAYWARDEN_SECRET_KEY must be at least 32 characters long.",  # a secret is never repeated back
            ],
        ),
        (
            ("up",),
            {"submit_lease_seconds": "10"},
            ["PAYWARDEN_SUBMIT_LEASE_SECONDS (10) must be at least 65: 3 provider attempts of "
             "PAYWARDEN_PROVIDER_TIMEOUT_SECONDS (20) plus a margin."],
        ),
    ],
)  # fmt: skip
async def test_settings_that_cannot_work_are_named_one_a_line(database_url: str, command, settings, said) -> None:
    code, out = await paywarden_command(database_url, *command, **settings)
    assert (code, out.splitlines()) == (2, [f"paywarden: configuration problem: {line}" for line in said])


async def test_keys_list_shows_a_budget_as_an_amount(database_url: str) -> None:
    await new_key(database_url, budget_minor=10_000, budget_currency="USD")
    code, listed = await paywarden_command(database_url, "keys", "list")
    assert code == 0 and "budget='100.00 USD per 24 hours'" in listed


async def test_commands_read_the_env_file_they_are_given(database_url: str, tmp_path) -> None:
    settings_file = tmp_path / "paywarden.env"
    settings_file.write_text("PAYWARDEN_STDIO_TENANT=from_the_file\n")
    code, out = await paywarden_command(database_url, "mcp", env_file=str(settings_file))
    assert code != 0 and "paywarden tenants create from_the_file" in out


async def test_a_wrong_key_is_told_it_is_not_valid(app) -> None:
    async with local_http() as http:
        answer = await http.post(f"{app.base_url}/mcp", json={}, headers={"Authorization": "Bearer pwk_wrong"})
    assert answer.status_code == 401 and "resource_metadata=" in answer.headers["WWW-Authenticate"]
    assert "The API key is not valid" in answer.json()["error_description"]


async def test_a_revoked_key_is_told_it_is_not_valid(app, database_url: str, db) -> None:
    key = await new_key(database_url)
    async with http_client(f"{app.base_url}/mcp", key) as client:  # it works until it is revoked
        await call(client, "check_entitlement", customer_id="c", feature="pro")
    code, out = await paywarden_command(database_url, "keys", "revoke", await key_id(db, key))
    assert code == 0 and "revoked at" in out
    async with local_http(base_url=app.base_url, headers={"Authorization": f"Bearer {key}"}) as http:
        answer = await http.post("/mcp", json={})
        over_http_api = await http.get("/v1/customers/c/entitlements/pro")
    assert answer.status_code == 401 and "The API key is not valid" in answer.json()["error_description"]
    assert over_http_api.status_code == 401 and "not valid" in over_http_api.json()["detail"]


async def test_a_revoke_commits_even_when_its_announcement_cannot_be_confirmed(settings, database_url, db) -> None:
    key = await new_key(database_url)
    deaf = settings.model_copy(update={"listen_database_url": "postgresql://nobody@127.0.0.1:1/none"})
    async with open_services(deaf) as services:
        revoked = await api_keys.revoke(services, await key_id(db, key))
    assert revoked.revoked_at is not None
    assert await db.fetchval("SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = $1", revoked.id)


def test_the_provider_library_logs_no_request_lines() -> None:
    logs.configure("text")
    assert not logging.getLogger("stripe").isEnabledFor(logging.INFO)


def test_provider_messages_reach_agents_without_the_providers_support_address() -> None:
    error = stripe.InvalidRequestError(
        "No such payment method. If this problem persists, let us know at support@stripe.com.", param=None
    )
    assert _safe_message(error) == "No such payment method."


def test_a_running_embedded_postgres_is_recognised(tmp_path) -> None:
    assert not _running(tmp_path)
    (tmp_path / "postmaster.pid").write_text(f"{os.getpid()}\n{tmp_path}\n")
    assert _running(tmp_path)
    (tmp_path / "postmaster.pid").write_text("999999999\n")
    assert not _running(tmp_path)
