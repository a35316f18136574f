"""Filters as people type them in a form: dates as UTC days (a range includes both ends)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from server.errors import InvalidRequest


def day(text: str, which: str) -> date | None:
    """`2026-03-01` → that date; empty → None; anything else is refused naming the field (`which`)."""
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(f"The {which} date {text!r} is not a date; write it as YYYY-MM-DD.") from None


def day_start(text: str, which: str = "from") -> datetime | None:
    """The first moment (UTC) of the day typed."""
    typed = day(text, which)
    return datetime.combine(typed, time(), UTC) if typed else None


def day_after(text: str, which: str = "to") -> datetime | None:
    """The first moment (UTC) after the day typed: a range up to it includes the whole day."""
    typed = day(text, which)
    return datetime.combine(typed + timedelta(days=1), time(), UTC) if typed else None
