"""check_entitlement: may this customer use this feature now? Answered from paid entitlements only."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from db import entitlements, payments
from db.pool import connection
from server.catalog import Product
from server.errors import DatabaseUnavailable
from server.services import Services
from tools.arguments import CustomerId, Feature
from tools.services import services

ANNOTATIONS = ToolAnnotations(
    title="Check an entitlement",
    read_only_hint=True,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=False,
)
Reason = Literal["active", "no_entitlement", "expired", "payment_pending", "unknown_feature"]


class Offer(BaseModel):
    """A catalog product that would grant the feature."""

    product_id: str
    name: str
    amount_minor: int
    currency: str
    price_display: str
    days: int = Field(description="How many days of the feature it grants.")

    @classmethod
    def of(cls, product: Product, feature: str) -> Offer:
        days = sum(grant.days for grant in product.grants if grant.feature == feature)
        return cls(
            product_id=product.id,
            name=product.name,
            amount_minor=product.amount_minor,
            currency=product.currency,
            price_display=product.price_display,
            days=days,
        )


class EntitlementAnswer(BaseModel):
    allowed: bool = Field(description="True only when a paid, unexpired entitlement exists right now.")
    customer_id: str
    feature: str
    reason: Reason
    expires_at: datetime | None = Field(description="When access ends (or ended, for 'expired').")
    pending_payment_id: str | None = Field(default=None, description="The unsettled payment, for 'payment_pending'.")
    offers: list[Offer] = Field(default_factory=list, description="Products that would grant the feature.")
    next_step: str


NEXT_STEP: dict[str, str] = {
    "active": "Go ahead: the customer has paid for this feature.",
    "no_entitlement": "Not allowed. Offer one of the products in offers and charge with create_charge.",
    "expired": "Not allowed: access has expired. Offer a renewal from offers and charge with create_charge.",
    "payment_pending": "Not allowed yet: a payment is in progress (pending_payment_id). Check get_payment; "
    "if a person must act, share its next_action_url.",
    "unknown_feature": "Not allowed: no catalog product grants this feature. Check the feature name.",
}


async def check_entitlement(ctx: Context, customer_id: CustomerId, feature: Feature) -> EntitlementAnswer:
    """Check whether a customer may use a feature right now (e.g. 'pro').

    Call it before doing paid work for a customer. It answers from payments the provider has
    confirmed, never from a charge that is still in progress. When allowed is false, reason says
    why and offers lists the catalog products that would grant the feature: offer one and charge it
    with create_charge. If this call fails, treat the customer as not entitled.
    """
    try:
        return await answer(services(ctx), customer_id, feature)
    except DatabaseUnavailable:
        raise DatabaseUnavailable(
            "Could not verify the entitlement: the payments database is not answering. Treat the customer "
            "as NOT entitled and retry shortly."
        ) from None


async def answer(services: Services, customer_id: str, feature: str) -> EntitlementAnswer:
    products = services.catalog.granting(feature)
    async with connection(services.pool) as conn:
        state = await entitlements.state(conn, customer_id, feature)
        pending = None
        if state.active_until is None and products:
            pending = await payments.has_open_payment_for(conn, customer_id, [p.id for p in products])
    reason = _reason(state, pending, has_products=bool(products))
    offers = [] if reason == "active" else [Offer.of(product, feature) for product in products]
    return EntitlementAnswer(
        allowed=reason == "active",
        customer_id=customer_id,
        feature=feature,
        reason=reason,
        expires_at=state.active_until or state.last_expired_at,
        pending_payment_id=pending,
        offers=offers,
        next_step=NEXT_STEP[reason],
    )


def _reason(state: entitlements.EntitlementState, pending: str | None, *, has_products: bool) -> Reason:
    if state.active_until is not None:
        return "active"
    if pending is not None:
        return "payment_pending"
    if state.last_expired_at is not None:
        return "expired"
    return "no_entitlement" if has_products else "unknown_feature"
