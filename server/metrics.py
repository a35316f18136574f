"""Prometheus metrics: what the webhook inbox, the tools, the state machine and the reconciler did."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

WEBHOOK_EVENTS = Counter(
    "paywarden_webhook_events_total",
    "Webhook events by what became of them (received, duplicate, rejected, applied, ignored, failed, …).",
    ["outcome"],
)
TOOL_CALLS = Counter("paywarden_tool_calls_total", "MCP tool calls by tool and result.", ["tool", "result"])
TOOL_LATENCY = Histogram(
    "paywarden_tool_duration_seconds",
    "MCP tool call latency.",
    ["tool"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RECONCILER_RUNS = Counter("paywarden_reconciler_runs_total", "Reconciler passes.")
RECONCILER_FIXES = Counter("paywarden_reconciler_fixes_total", "What reconciler passes changed.", ["kind"])
PAYMENT_TRANSITIONS = Counter(
    "paywarden_payment_transitions_total",
    "Payment status changes applied by this process, by the status moved to.",
    ["to_status"],
)
WEBHOOK_DELIVERIES = Counter(
    "paywarden_webhook_deliveries_total",
    "Attempts at delivering events to the merchants' webhook endpoints, by result "
    "(delivered, failed, refused by the address guard, gave_up).",
    ["result"],
)


@contextmanager
def tool_call(tool: str) -> Iterator[None]:
    started = time.perf_counter()
    result = "error"
    try:
        yield
        result = "ok"
    finally:
        TOOL_CALLS.labels(tool, result).inc()
        TOOL_LATENCY.labels(tool).observe(time.perf_counter() - started)


def exposition() -> tuple[bytes, str]:
    """The Prometheus text: in-process counters only, so a scrape costs the database nothing."""
    return generate_latest(), CONTENT_TYPE_LATEST
