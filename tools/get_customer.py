"""get_customer: what a customer has — saved cards, access, credits, latest payments."""

from __future__ import annotations

from mcp.types import ToolAnnotations

from server import customers
from server.customers import CustomerView
from server.tenancy import Scope
from tools.arguments import CustomerId
from tools.context import ToolContext, caller, services

SCOPE: Scope = "read"
ANNOTATIONS = ToolAnnotations(
    title="Look up a customer",
    read_only_hint=True,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=False,
)


async def get_customer(ctx: ToolContext, customer_id: CustomerId) -> CustomerView:
    """Look up a customer: their saved cards (id, brand, last4, expiry, which is the default), the access
    they have paid for (feature, until when, which payment granted it), their credit balances, their
    latest payments, and any disputes (chargebacks) their bank opened against a payment.

    Call it before charging a saved card (payment_method='saved' needs a default card) or to explain to
    someone what they have. An unknown customer_id is an error that says so.
    """
    return await customers.details(services(ctx), caller(ctx), customer_id)
