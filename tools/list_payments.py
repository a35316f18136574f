"""list_payments: a customer's payments, newest first, one page at a time."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from db import payments
from db.pool import connection
from server.errors import InvalidRequest
from tools.arguments import CustomerId
from tools.payment_view import PaymentView
from tools.services import caller, services

ANNOTATIONS = ToolAnnotations(
    title="List a customer's payments",
    read_only_hint=True,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=False,
)
Status = Literal[
    "created", "requires_approval", "pending", "requires_action", "processing",
    "succeeded", "failed", "canceled", "partially_refunded", "refunded",
]  # fmt: skip


class PaymentPage(BaseModel):
    payments: list[PaymentView]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last page.")


async def list_payments(
    ctx: Context,
    customer_id: CustomerId,
    status: Status | None = None,
    limit: Annotated[int, Field(strict=True, ge=1, le=100, description="Page size, 1 to 100.")] = 20,
    cursor: Annotated[str | None, Field(max_length=200, description="next_cursor of the previous page.")] = None,
) -> PaymentPage:
    """List a customer's payments, newest first, optionally only those with one status.

    Call it to answer "what has this customer paid?" or to find a payment_id. Pages hold up to
    `limit` payments; when next_cursor is set, call again with it for the next page.
    """
    who = caller(ctx, "read")
    after = decode_cursor(cursor) if cursor else None
    async with connection(services(ctx).pool) as conn:
        rows = await payments.page_for_customer(conn, who.tenant_id, customer_id, status, limit + 1, after)
    page, more = rows[:limit], len(rows) > limit
    return PaymentPage(
        payments=[PaymentView.of(payment) for payment in page],
        next_cursor=encode_cursor(page[-1].created_at, page[-1].id) if more else None,
    )


def encode_cursor(created_at: datetime, payment_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), payment_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, payment_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(created_at), str(payment_id)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidRequest("cursor is not one this tool returned; pass next_cursor exactly, or omit it.") from None
