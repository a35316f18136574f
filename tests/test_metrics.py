"""/metrics speaks Prometheus and counts what happened."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import call, local_http, signed
from tests.helpers import post_webhook as post


async def scrape(app) -> dict[tuple[str, tuple], float]:
    async with local_http(base_url=app.base_url) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


async def test_metrics_count_events_tool_calls_and_payments(app, mcp) -> None:
    before = await scrape(app)
    async with mcp() as client:
        await call(
            client,
            "create_charge",
            customer_id="cus_m",
            idempotency_key="m",
            product_id="day_pass",
            payment_method="pm_card_visa",
        )
        await call(client, "check_entitlement", customer_id="cus_m", feature="pro")
    body = json.dumps({"id": "evt_m", "type": "customer.created", "data": {"object": {}}})
    await post(app, body, signed(body))
    await post(app, body, signed(body))
    await post(app, body, signed(body, secret="whsec_forged"))
    after = await scrape(app)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("paywarden_webhook_events_total", outcome="unhandled") >= 1  # ours, and the sandbox's own
    assert grew("paywarden_webhook_events_total", outcome="duplicate") == 1
    assert grew("paywarden_webhook_events_total", outcome="rejected") == 1
    assert grew("paywarden_tool_calls_total", tool="create_charge", result="ok") == 1
    assert grew("paywarden_tool_duration_seconds_count", tool="check_entitlement") == 1
    assert grew("paywarden_payment_transitions_total", to_status="succeeded") == 1
