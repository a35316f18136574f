"""JSON log lines carry payment_id and event_id as fields."""

from __future__ import annotations

import json
import logging

from server.logs import JsonLines


def test_json_lines_carry_the_ids() -> None:
    record = logging.LogRecord("paywarden", logging.INFO, __file__, 1, "webhook %s applied", ("evt_1",), None)
    record.event_id, record.payment_id = "evt_1", "pay_1"
    line = json.loads(JsonLines().format(record))
    assert line["message"] == "webhook evt_1 applied" and line["level"] == "info"
    assert (line["event_id"], line["payment_id"]) == ("evt_1", "pay_1") and "time" in line


async def test_paywarden_logs_json_when_asked(database_url) -> None:
    from tests.helpers import paywarden_command

    code, out = await paywarden_command(database_url, "webhooks", "replay", "evt_missing", log_format="json")
    assert code == 1 and "evt_missing: unknown" in out
    assert any(line.startswith("{") and json.loads(line)["level"] for line in out.splitlines())
