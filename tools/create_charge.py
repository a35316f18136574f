"""create_charge: record a payment, then ask the provider for the money — never twice for one key."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from db import audit, idempotency, payments, transitions
from db.payments import NewPayment, Payment
from db.pool import transaction
from server.catalog import Catalog
from server.errors import IdempotencyKeyReused, InvalidRequest, PaymentNotFound
from server.money import check_amount, normalize_currency
from server.providers import ChargeRequest
from tools.arguments import AmountMinor, Currency, CustomerId, Description, IdempotencyKey, PaymentMethod, ProductId
from tools.payment_view import PaymentView
from tools.services import Services, services

ANNOTATIONS = ToolAnnotations(
    title="Charge a customer",
    read_only_hint=False,
    destructive_hint=False,
    idempotent_hint=True,
    open_world_hint=True,
)


class ChargeResult(PaymentView):
    replayed: bool = Field(
        description="True when this idempotency_key was used before for the same request: this is the "
        "original payment and nothing was charged again."
    )


@dataclass(frozen=True)
class ChargeInput:
    customer_id: str
    idempotency_key: str
    product_id: str | None
    amount_minor: int | None
    currency: str | None
    description: str | None
    payment_method: str | None

    def fingerprint(self) -> dict[str, Any]:
        """What must be identical for a repeat of this key to count as the same request."""
        fields = asdict(self)
        del fields["customer_id"], fields["idempotency_key"]
        return fields


async def create_charge(
    ctx: Context,
    customer_id: CustomerId,
    idempotency_key: IdempotencyKey,
    product_id: ProductId | None = None,
    amount_minor: AmountMinor | None = None,
    currency: Currency | None = None,
    description: Description | None = None,
    payment_method: PaymentMethod | None = None,
) -> ChargeResult:
    """Charge a customer, either for a catalog product (product_id) or an ad-hoc amount (amount_minor + currency).

    Call it when the person has agreed to pay. Prefer a catalog product_id: its price comes from the
    catalog and the product's entitlements are granted when the money arrives. Give a fresh
    idempotency_key for each new charge and reuse it when retrying the same charge after a timeout or
    error: you get the original payment back (replayed=true) and nothing is charged twice.

    Returns the payment. status 'succeeded' means paid; 'requires_action' means a person must open
    next_action_url to pay; 'failed' means nothing was charged (see failure_reason). Access is never
    granted by this call itself: confirm with check_entitlement or get_payment.
    """
    request = ChargeInput(
        customer_id,
        idempotency_key,
        product_id,
        amount_minor,
        currency.upper() if currency else None,
        description,
        payment_method,
    )
    return await charge(services(ctx), request)


async def charge(services: Services, request: ChargeInput) -> ChargeResult:
    new = price(request, services.catalog, services.provider.name)
    payment, replayed = await record(services, request, new)
    if payment.status == "created":
        payment = await submit_to_provider(services, payment)
    return ChargeResult.of(payment, replayed=replayed)


def price(request: ChargeInput, catalog: Catalog, provider: str) -> NewPayment:
    """The payment to record: the catalog's price for a product, or the checked ad-hoc amount."""
    has_amount = request.amount_minor is not None or request.currency is not None
    if request.product_id and has_amount:
        raise InvalidRequest(
            "Give either product_id (the catalog sets the price) or amount_minor + currency, not both."
        )
    if request.product_id:
        product = catalog.get(request.product_id)
        grants = [grant.model_dump() for grant in product.grants]
        return NewPayment(
            request.customer_id,
            product.id,
            product.amount_minor,
            product.currency,
            request.description or product.name,
            request.payment_method,
            grants,
            provider,
        )
    if request.amount_minor is None or request.currency is None:
        raise InvalidRequest("Give a catalog product_id, or both amount_minor and currency for an ad-hoc charge.")
    amount = check_amount(request.amount_minor)
    currency = normalize_currency(request.currency)
    return NewPayment(
        request.customer_id, None, amount, currency, request.description, request.payment_method, [], provider
    )


async def record(services: Services, request: ChargeInput, new: NewPayment) -> tuple[Payment, bool]:
    """Claim the key and insert the payment in one transaction; or return what the key already holds."""
    payment_id = payments.new_payment_id()
    async with transaction(services.pool) as conn:
        if await idempotency.claim(
            conn, request.customer_id, request.idempotency_key, request.fingerprint(), payment_id
        ):
            payment = await payments.insert(conn, payment_id, new)
            await audit.append(
                conn,
                payment_id,
                actor="agent",
                from_status=None,
                to_status="created",
                reason=f"create_charge (idempotency_key {request.idempotency_key!r})",
            )
            return payment, False
        earlier = await idempotency.get(conn, request.customer_id, request.idempotency_key)
        _require_same_request(request, earlier["request"])
        payment = await payments.get(conn, earlier["payment_id"])
        if payment is None:
            raise PaymentNotFound()
        return payment, True


async def submit_to_provider(services: Services, payment: Payment) -> Payment:
    """Ask the provider for the money and record its answer. Safe to repeat: our payment id is its idempotency key."""
    answer = await services.provider.create_payment(
        ChargeRequest(
            payment.id,
            payment.customer_id,
            payment.amount_minor,
            payment.currency,
            payment.description,
            payment.payment_method,
            payment.product_id,
        )
    )
    change = transitions.Transition(
        to_status=answer.status,
        actor="provider",
        reason="the provider's answer to create_charge",
        provider_payment_id=answer.provider_payment_id,
        next_action_url=answer.next_action_url,
        failure_reason=answer.failure_reason,
    )
    async with transaction(services.pool) as conn:
        locked = await payments.lock(conn, payment.id)
        assert locked is not None  # payments are never deleted
        return (await transitions.apply(conn, locked, change)).payment


def _require_same_request(request: ChargeInput, earlier: dict[str, Any]) -> None:
    now = request.fingerprint()
    differing = [
        f"{name} (was {earlier.get(name)!r}, now {value!r})"
        for name, value in now.items()
        if earlier.get(name) != value
    ]
    if differing:
        raise IdempotencyKeyReused(
            f"idempotency_key {request.idempotency_key!r} was already used for a different request: "
            f"{'; '.join(differing)}. Use a new idempotency_key for a new charge, or repeat the original "
            "request exactly to get its result."
        )
