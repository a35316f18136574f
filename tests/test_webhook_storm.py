"""Fault injection: a storm of signed events — duplicated, shuffled, some forged — over real HTTP.

Every payment must end in the state its events imply, no event may be applied twice, and nothing
of a forged event may be stored.
"""

from __future__ import annotations

import asyncio
import json
import random

import asyncpg
import httpx
import pytest

from server import charges
from server.charges import ChargeInput
from server.services import open_services
from tests.helpers import LOCAL, local_http, signed
from tests.helpers import WEBHOOK_SECRET as SECRET

PAYMENTS = 200
EVENTS = 2000
RANK = {"requires_action": 1, "processing": 2}
TYPE = {
    "requires_action": "payment_intent.requires_action",
    "processing": "payment_intent.processing",
    "succeeded": "payment_intent.succeeded",
    "failed": "payment_intent.payment_failed",
}


def event(n: int, payment_id: str, status: str) -> str:
    intent = {
        "id": f"pi_{payment_id[4:]}",
        "object": "payment_intent",
        "amount": 300,
        "currency": "usd",
        "status": status if status != "failed" else "requires_payment_method",
        "metadata": {"payment_id": payment_id},
        "last_payment_error": {"message": "declined"} if status == "failed" else None,
    }
    return json.dumps({"id": f"evt_storm_{n}", "object": "event", "type": TYPE[status], "data": {"object": intent}})


def implied(statuses: set[str]) -> str:
    for terminal in ("succeeded", "failed"):
        if terminal in statuses:
            return terminal
    return max(statuses, key=RANK.get) if statuses else "created"


@pytest.mark.slow
async def test_a_storm_of_events_converges_exactly(app, db: asyncpg.Connection) -> None:
    rng = random.Random(2026)
    async with open_services(app.settings.model_copy(update={"duplicate_window_seconds": 0})) as services:
        ids = []
        for n in range(PAYMENTS):
            request = ChargeInput(customer_id=f"storm_{n}", idempotency_key="k", product_id="day_pass", caller=LOCAL)
            payment, _ = await charges.record(
                services, request, charges.price(request, services.catalog, services.provider), "not_asked"
            )
            ids.append(payment.id)

    valid: list[tuple[str, str, str]] = []  # (payment id, status, body)
    while len(valid) < int(EVENTS * 0.65):
        payment_id = rng.choice(ids)
        terminal = rng.choice(["succeeded", "failed", None])
        statuses = [rng.choice(["requires_action", "processing"]) for _ in range(rng.randint(0, 2))]
        for status in statuses + ([terminal] if terminal else []):
            valid.append((payment_id, status, event(len(valid), payment_id, status)))
    # one terminal outcome per payment, whatever the dice said: a later terminal event is out of order
    first_terminal: dict[str, str] = {}
    events = []
    for payment_id, status, body in valid:
        if status in ("succeeded", "failed"):
            if first_terminal.setdefault(payment_id, status) != status:
                continue
        events.append((payment_id, status, body))
    deliveries = [(body, False) for _, _, body in events]
    deliveries += [(rng.choice(events)[2], False) for _ in range(int(len(events) * 0.3))]  # 30% duplicates
    forged = [(event(100_000 + n, rng.choice(ids), "succeeded"), True) for n in range(int(EVENTS * 0.05))]
    deliveries += forged
    rng.shuffle(deliveries)

    answers = await deliver(app.base_url, deliveries)

    assert all(status == 400 for status, is_forged in answers if is_forged)
    assert all(status == 200 for status, is_forged in answers if not is_forged)
    stored = await db.fetch("SELECT event_id FROM webhook_events WHERE event_id LIKE 'evt_storm_%'")
    assert len(stored) == len(events)  # each valid event exactly once, no forged one at all
    assert not [row for row in stored if int(row["event_id"].rsplit("_", 1)[1]) >= 100_000]

    expected: dict[str, set[str]] = {payment_id: set() for payment_id in ids}
    for payment_id, status, _ in events:
        expected[payment_id].add(status)
    actual = dict(await db.fetch("SELECT id, status FROM payments"))
    assert {pid: implied(statuses) for pid, statuses in expected.items()} == actual
    granted = await db.fetchval("SELECT count(*) FROM entitlements")
    assert granted == sum(1 for status in actual.values() if status == "succeeded")  # never granted twice
    applied_twice = await db.fetchval(
        "SELECT count(*) FROM (SELECT payment_id, to_status FROM payment_audit GROUP BY 1, 2 HAVING count(*) > 1) x"
    )
    assert applied_twice == 0


async def deliver(base_url: str, deliveries: list[tuple[str, bool]]) -> list[tuple[int, bool]]:
    queue = iter(deliveries)
    answers: list[tuple[int, bool]] = []

    async def worker(http: httpx.AsyncClient) -> None:
        for body, is_forged in queue:
            headers = signed(body, secret="whsec_forged" if is_forged else SECRET)
            response = await http.post("/webhooks/stripe", content=body, headers=headers)
            answers.append((response.status_code, is_forged))

    async with local_http(base_url=base_url, timeout=30) as http:
        await asyncio.gather(*(worker(http) for _ in range(16)))
    return answers


async def test_with_webhooks_suppressed_the_reconciler_alone_finds_the_truth(app, db: asyncpg.Connection) -> None:
    from server.reconciler import reconcile_once

    quiet = app.settings.model_copy(update={"reconcile_after_seconds": 0, "duplicate_window_seconds": 0})
    async with open_services(quiet) as services:
        waiting = []
        for n in range(20):
            request = ChargeInput(
                customer_id=f"quiet_{n}",
                idempotency_key="k",
                product_id="day_pass",
                payment_method="pm_card_authenticationRequired",
                caller=LOCAL,
            )
            waiting.append(await charges.charge(services, request))
        await db.execute("DELETE FROM sandbox.deliveries")  # no webhook will ever arrive
        truth = {}
        for n, payment in enumerate(waiting):  # what happened at the provider meanwhile
            status = ("succeeded", "canceled", "processing", "requires_action")[n % 4]
            truth[payment.payment_id] = status
            await db.execute(
                "UPDATE sandbox.payment_intents SET object = jsonb_set(object, '{status}', to_jsonb($2::text)) "
                "WHERE id = $1",
                payment.provider_payment_id,
                status,
            )
        report = await reconcile_once(services)
        again = await reconcile_once(services)
    assert dict(await db.fetch("SELECT id, status FROM payments")) == truth
    assert len(report.updated) == 15 and again.updated == []
