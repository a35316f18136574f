"""The sandbox's customers, payment methods and setup intents, as Stripe's API serves them."""

from __future__ import annotations

import secrets
import time
from typing import Any

import asyncpg
import stripe.params as stripe_params
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from server.providers.sandbox import cards, store
from server.providers.sandbox.cards import ChosenCard
from server.providers.sandbox.events import emit, event
from server.providers.sandbox.objects import customer_template, fill
from server.providers.sandbox.requests import (
    Answer,
    SandboxError,
    form,
    items,
    metadata,
    missing,
    query_params,
    read,
    run,
    text,
)

router = APIRouter(tags=["sandbox"])


@router.post("/v1/customers")
async def create_customer(request: Request) -> JSONResponse:
    params = await form(request, stripe_params.CustomerCreateParams)

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        customer = fill(
            customer_template("cus_" + secrets.token_hex(7)),
            created=int(time.time()),
            email=text(params, "email", 512),
            name=text(params, "name", 256),
            description=text(params, "description", 350),
            phone=text(params, "phone", 20),
            metadata=metadata(params.get("metadata")),
            invoice_prefix=secrets.token_hex(4).upper(),
            next_invoice_sequence=1,
        )
        await store.put(conn, customer)
        await emit(conn, "customer.created", customer, key)
        return Answer(200, customer)

    return await run(request, params, operation)


@router.get("/v1/customers/{customer_id}")
async def retrieve_customer(customer_id: str, request: Request) -> JSONResponse:
    return await read(request, lambda conn: _existing(conn, "customer", customer_id))


@router.post("/v1/customers/{customer_id}")
async def update_customer(customer_id: str, request: Request) -> JSONResponse:
    """`invoice_settings[default_payment_method]` (a card saved to this customer: what its invoices charge when
    their subscription names no card of its own), metadata and the contact fields."""
    params = await form(request, stripe_params.CustomerUpdateParams)

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        locked = await store.lock_object(conn, "customer", customer_id)
        if locked is None:
            raise missing("customer", customer_id)
        customer, previous = locked[0], {}
        settings = params.get("invoice_settings")
        if isinstance(settings, dict) and "default_payment_method" in settings:
            card = text(settings, "default_payment_method", 255) or None
            await _own_card(conn, card, customer_id)
            previous["invoice_settings"] = dict(customer["invoice_settings"])
            customer["invoice_settings"] = {**customer["invoice_settings"], "default_payment_method": card}
        for name, limit in (("email", 512), ("name", 256), ("description", 350), ("phone", 20)):
            if name in params:
                previous[name], customer[name] = customer[name], text(params, name, limit) or None
        if "metadata" in params:
            previous["metadata"], customer["metadata"] = customer["metadata"], {
                **customer["metadata"], **metadata(params["metadata"])}  # fmt: skip
        await store.put(conn, customer)
        notice = event("customer.updated", customer, key)
        notice["data"]["previous_attributes"] = previous
        await store.insert_event(conn, notice)
        return Answer(200, customer)

    return await run(request, params, operation)


async def _own_card(conn: asyncpg.Connection, card: str | None, customer_id: str) -> None:
    """A customer's default card must be one saved to that customer (Stripe refuses any other)."""
    method = await store.get_object(conn, "payment_method", card) if card else None
    if card is not None and (method is None or method["customer"] != customer_id):
        raise SandboxError(
            400,
            f"The customer does not have a payment method with the ID {card[:64]}. The payment method must be "
            "attached to the customer.",
            code="resource_missing",
            param="invoice_settings[default_payment_method]",
        )


@router.get("/v1/customers/{customer_id}/payment_methods")
async def list_customer_payment_methods(customer_id: str, request: Request) -> JSONResponse:
    params = query_params(request)
    limit = int(params["limit"]) if str(params.get("limit", "")).isdigit() else 10

    async def lookup(conn: asyncpg.Connection) -> dict[str, Any]:
        await _existing(conn, "customer", customer_id)
        methods = await store.objects_of_customer(conn, "payment_method", customer_id)
        url = f"/v1/customers/{customer_id}/payment_methods"
        return {"object": "list", "url": url, "has_more": len(methods) > limit, "data": methods[:limit]}

    return await read(request, lookup)


@router.get("/v1/payment_methods/{payment_method_id}")
async def retrieve_payment_method(payment_method_id: str, request: Request) -> JSONResponse:
    return await read(request, lambda conn: _existing(conn, "payment_method", payment_method_id))


@router.post("/v1/payment_methods/{payment_method_id}/attach")
async def attach_payment_method(payment_method_id: str, request: Request) -> JSONResponse:
    """Attaching a test card (pm_card_visa) makes a payment method of its own, as Stripe does."""
    params = await form(request, stripe_params.PaymentMethodAttachParams)

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        customer = await existing_customer_id(conn, text(params, "customer", 255))
        if customer is None:
            raise SandboxError(400, "Missing required param: customer.", code="parameter_missing", param="customer")
        method = await _attachable(conn, payment_method_id)
        attached = {**method, "customer": customer}
        await store.put(conn, attached, {"test_card": await _test_card_of(conn, method, payment_method_id)})
        await emit(conn, "payment_method.attached", attached, key)
        return Answer(200, attached)

    return await run(request, params, operation)


@router.post("/v1/payment_methods/{payment_method_id}/detach")
async def detach_payment_method(payment_method_id: str, request: Request) -> JSONResponse:
    params = await form(request, stripe_params.PaymentMethodDetachParams)

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        locked = await store.lock_object(conn, "payment_method", payment_method_id)
        if locked is None:
            raise missing("payment_method", payment_method_id)
        method = locked[0]
        if method["customer"] is None:
            raise SandboxError(
                400, f"The payment method {payment_method_id} is not attached to a customer.", code="unexpected_state"
            )
        detached = {**method, "customer": None}
        await store.put(conn, detached)
        notice = event("payment_method.detached", detached, key)
        notice["data"]["previous_attributes"] = {"customer": method["customer"]}
        await store.insert_event(conn, notice)
        return Answer(200, detached)

    return await run(request, params, operation)


@router.get("/v1/setup_intents/{setup_intent_id}")
async def retrieve_setup_intent(setup_intent_id: str, request: Request) -> JSONResponse:
    """`expand[]=payment_method` gives the payment method itself instead of its id."""
    expand = items(query_params(request).get("expand"))

    async def lookup(conn: asyncpg.Connection) -> dict[str, Any]:
        setup_intent = await _existing(conn, "setup_intent", setup_intent_id)
        if "payment_method" in expand and setup_intent["payment_method"]:
            setup_intent["payment_method"] = await _existing(conn, "payment_method", setup_intent["payment_method"])
        return setup_intent

    return await read(request, lookup)


async def existing_customer_id(conn: asyncpg.Connection, customer_id: str | None) -> str | None:
    """The `customer` parameter, if given: it must be a customer of the sandbox."""
    if customer_id is None:
        return None
    await _existing(conn, "customer", customer_id, param="customer")
    return customer_id


async def chosen_card(conn: asyncpg.Connection, payment_method: Any, customer: str | None) -> ChosenCard | None:
    """A `payment_method` parameter: a test card id (pm_card_visa), or a saved payment method, which must
    then belong to the customer of the payment."""
    if payment_method in (None, ""):
        return None
    if payment_method in cards.KNOWN:
        return ChosenCard(payment_method=payment_method, test_card=payment_method)
    saved = await store.get_object(conn, "payment_method", str(payment_method))
    if saved is None:
        raise missing("PaymentMethod", str(payment_method), "payment_method")
    if saved["customer"] is not None and saved["customer"] != customer:
        raise SandboxError(
            400,
            f"The provided PaymentMethod belongs to customer {saved['customer']}; pass that customer with it.",
            code="payment_method_not_available",
            param="payment_method",
        )
    private = await store.get_private(conn, "payment_method", saved["id"]) or {}
    return ChosenCard(payment_method=saved["id"], test_card=private["test_card"], customer=saved["customer"])


async def session_of_intent(conn: asyncpg.Connection, intent_id: str) -> dict[str, Any] | None:
    return await store.session_of_intent(conn, intent_id)


async def _attachable(conn: asyncpg.Connection, payment_method_id: str) -> dict[str, Any]:
    if payment_method_id in cards.UNATTACHABLE:
        raise SandboxError(402, "Your card was declined.", type_="card_error", code="card_declined")
    if payment_method_id in cards.KNOWN:
        return cards.new_payment_method(payment_method_id, None)
    locked = await store.lock_object(conn, "payment_method", payment_method_id)
    if locked is None:
        raise missing("payment_method", payment_method_id)
    if locked[0]["customer"] is not None:
        raise SandboxError(
            400, "This PaymentMethod is already attached to a customer.", code="payment_method_unexpected_state"
        )
    return locked[0]


async def _test_card_of(conn: asyncpg.Connection, method: dict[str, Any], payment_method_id: str) -> str:
    if payment_method_id in cards.KNOWN:
        return payment_method_id
    private = await store.get_private(conn, "payment_method", method["id"]) or {}
    return private["test_card"]


async def _existing(conn: asyncpg.Connection, kind: str, object_id: str, param: str = "id") -> dict[str, Any]:
    found = await store.get_object(conn, kind, object_id)
    if found is None:
        raise missing(kind, object_id, param)
    return found
