"""list_payments: a customer's payments, newest first, one page at a time."""

from __future__ import annotations

from typing import Annotated

from mcp.types import ToolAnnotations
from pydantic import Field

from server import payments
from server.payments import PaymentPage, PaymentStatus
from server.tenancy import Scope
from tools.arguments import CustomerId
from tools.context import ToolContext, caller, services

SCOPE: Scope = "read"
ANNOTATIONS = ToolAnnotations(
    title="List a customer's payments",
    read_only_hint=True,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=False,
)


async def list_payments(
    ctx: ToolContext,
    customer_id: CustomerId,
    status: PaymentStatus | None = None,
    limit: Annotated[int, Field(strict=True, ge=1, le=100, description="Page size, 1 to 100.")] = 20,
    cursor: Annotated[str | None, Field(max_length=200, description="next_cursor of the previous page.")] = None,
) -> PaymentPage:
    """List a customer's payments, newest first, optionally only those with one status.

    Call it to answer "what has this customer paid?" or to find a payment_id. Pages hold up to
    `limit` payments; when next_cursor is set, call again with it for the next page.
    """
    return await payments.page(services(ctx), caller(ctx), customer_id, status=status, limit=limit, cursor=cursor)
