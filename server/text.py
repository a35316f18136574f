"""What identifiers and free text from callers may contain: no control characters, and none of the
invisible formatting characters (bidi overrides and isolates, zero-width characters, the BOM) that make a
log line or a console show something other than what is stored."""

from __future__ import annotations

INVISIBLE = (
    "\u00ad\u061c\u180e"  # soft hyphen, Arabic letter mark, Mongolian vowel separator
    "\u200b-\u200f"  # zero-width space, joiners, left-to-right / right-to-left marks
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2060-\u2064\u2066-\u206f"  # word joiner, invisible operators, bidi isolates, deprecated formatting
    "\ufeff\ufff9-\ufffb"  # byte order mark, interlinear annotation
)
"""A regular-expression character class body (ranges of code points) of what is refused everywhere."""
IDENTIFIER_PATTERN = f"^[^\\x00-\\x1f\\x7f{INVISIBLE}]+$"
"""Customer ids, idempotency keys, product ids, features: visible characters only."""
CUSTOMER_ID_PATTERN = f"^[^/\\x00-\\x1f\\x7f{INVISIBLE}]+$"
"""Customer ids: as identifiers, and no `/`, since a customer id is a segment of the HTTP API's paths."""
TEXT_PATTERN = f"^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f{INVISIBLE}]*$"
"""Descriptions and reasons: like identifiers, but tabs and line breaks are allowed."""
