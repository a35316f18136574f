"""The sandbox's Stripe Billing: products, prices, subscriptions, invoices and the hosted invoice page, and its
test clock (`GET /v1/test_helpers/sandbox_clock`, `POST …/advance`) that runs renewals as time passes."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg
import stripe.params as stripe_params
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from server.providers.sandbox import billing, pages, store
from server.providers.sandbox.api_customers import existing_customer_id
from server.providers.sandbox.billing import MAX_ADVANCE_DAYS, Billing
from server.providers.sandbox.objects import fill, price_template, product_template
from server.providers.sandbox.requests import (
    Answer,
    SandboxError,
    flag,
    form,
    items,
    metadata,
    missing,
    query_params,
    read,
    run,
    state_of,
    text,
)

router = APIRouter(tags=["sandbox"])


@router.post("/v1/products")
async def create_product(request: Request) -> JSONResponse:
    params = await form(request, stripe_params.ProductCreateParams)

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        product_id = text(params, "id", 255) or "prod_" + secrets.token_hex(7)
        if await store.get_object(conn, "product", product_id):
            raise SandboxError(400, f"Product already exists: {product_id}", code="resource_already_exists")
        at = await billing.now(conn)
        product = fill(
            product_template(product_id), name=text(params, "name", 250) or "", active=True, created=at, updated=at,
            metadata=metadata(params.get("metadata")),
        )  # fmt: skip
        await store.put(conn, product)
        return Answer(200, product)

    return await run(request, params, operation)


@router.get("/v1/products/{product_id}")
async def retrieve_product(product_id: str, request: Request) -> JSONResponse:
    return await read(request, lambda conn: _existing(conn, "product", product_id))


@router.post("/v1/products/{product_id}")
async def update_product(product_id: str, request: Request) -> JSONResponse:
    params = await form(request, stripe_params.ProductUpdateParams)

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        product = await _existing(conn, "product", product_id)
        if "name" in params:
            product["name"] = text(params, "name", 250)
        if "metadata" in params:
            product["metadata"] = {**product["metadata"], **metadata(params["metadata"])}
        product["updated"] = await billing.now(conn)
        await store.put(conn, product)
        return Answer(200, product)

    return await run(request, params, operation)


@router.post("/v1/prices")
async def create_price(request: Request) -> JSONResponse:
    params = await form(request, stripe_params.PriceCreateParams)

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        product = await _existing(conn, "product", text(params, "product", 255) or "", param="product")
        lookup_key = text(params, "lookup_key", 200)
        if lookup_key and flag(params, "transfer_lookup_key"):
            await store.release_lookup_key(conn, lookup_key)
        elif lookup_key and await store.prices_by_lookup_keys(conn, [lookup_key]):
            raise SandboxError(400, f"A price with lookup_key {lookup_key} already exists.", param="lookup_key")
        price = fill(
            price_template("price_" + secrets.token_hex(10)),
            active=True,
            created=await billing.now(conn),
            currency=str(params.get("currency", "")).lower(),
            lookup_key=lookup_key,
            metadata=metadata(params.get("metadata")),
            nickname=text(params, "nickname", 250),
            product=product["id"],
            recurring=_recurring(params.get("recurring")),
            type="recurring" if params.get("recurring") else "one_time",
            unit_amount=_amount(params.get("unit_amount")),
            unit_amount_decimal=str(params.get("unit_amount")),
        )
        await store.put(conn, price)
        return Answer(200, price)

    return await run(request, params, operation)


@router.get("/v1/prices")
async def list_prices(request: Request) -> JSONResponse:
    params = query_params(request)
    keys = [str(key) for key in items(params.get("lookup_keys"))]

    async def lookup(conn: asyncpg.Connection) -> dict[str, Any]:
        found = await store.prices_by_lookup_keys(conn, keys) if keys else []
        if params.get("active") in ("true", "false"):
            found = [price for price in found if price["active"] == (params["active"] == "true")]
        return {"object": "list", "url": "/v1/prices", "has_more": False, "data": found}

    return await read(request, lookup)


@router.get("/v1/prices/{price_id}")
async def retrieve_price(price_id: str, request: Request) -> JSONResponse:
    return await read(request, lambda conn: _existing(conn, "price", price_id))


@router.post("/v1/prices/{price_id}")
async def update_price(price_id: str, request: Request) -> JSONResponse:
    """Only what Stripe lets change on a price: whether it is active, its lookup key, metadata, nickname."""
    params = await form(request, stripe_params.PriceUpdateParams)

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        price = await _existing(conn, "price", price_id)
        if "active" in params:
            price["active"] = flag(params, "active")
        if "metadata" in params:
            price["metadata"] = {**price["metadata"], **metadata(params["metadata"])}
        await store.put(conn, price)
        return Answer(200, price)

    return await run(request, params, operation)


@router.post("/v1/subscriptions")
async def create_subscription(request: Request) -> JSONResponse:
    params = await form(request, stripe_params.SubscriptionCreateParams)
    base = state_of(request).base_url

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        await store.lock_clock(conn)
        customer = await existing_customer_id(conn, text(params, "customer", 255))
        if customer is None:
            raise SandboxError(400, "Missing required param: customer.", code="parameter_missing", param="customer")
        listed = items(params.get("items"))
        price_id = listed[0].get("price") if listed and isinstance(listed[0], dict) else None
        price = billing.require_price(await store.get_object(conn, "price", str(price_id)), price_id)
        work = Billing(conn, key, base, await billing.now(conn))
        sub, private = billing.new_subscription("sub_" + secrets.token_hex(12), params, price, customer, work.at)
        await work.save(sub, private)
        await work.emit("customer.subscription.created", sub)
        await _first_invoice(work, sub, private, price, params.get("payment_behavior"))
        return Answer(200, await _expanded(conn, sub, params.get("expand")))

    return await run(request, params, operation)


async def _first_invoice(
    work: Billing, sub: dict[str, Any], private: dict[str, Any], price: dict[str, Any], behavior: Any
) -> None:
    """Trialing: a zero invoice, paid. Otherwise the first period's invoice, charged to the default payment
    method if there is one; unpaid, the subscription stays `incomplete` and the person pays on its page."""
    trialing = sub["status"] == "trialing"
    bounds = (sub["items"]["data"][0]["current_period_start"], sub["items"]["data"][0]["current_period_end"])
    invoice = work.new_invoice(sub, price, 0 if trialing else price["unit_amount"], bounds, "subscription_create")
    await work.issue(invoice)
    sub["latest_invoice"] = invoice["id"]
    outcome = await work.attempt(invoice, sub["default_payment_method"], off_session=False)
    if outcome == "paid":
        private["due_at"] = bounds[1]
        await work.move(sub, private, status=sub["status"] if trialing else "active")
        return
    if behavior == "error_if_incomplete":
        raise SandboxError(402, "Your card was declined.", type_="card_error", code="card_declined")
    private["due_at"] = work.at + billing.INCOMPLETE_EXPIRES_AFTER  # unpaid by then: incomplete_expired
    await work.save(sub, private)


@router.get("/v1/subscriptions/{sub_id}")
async def retrieve_subscription(sub_id: str, request: Request) -> JSONResponse:
    expand = query_params(request).get("expand")

    async def lookup(conn: asyncpg.Connection) -> dict[str, Any]:
        return await _expanded(conn, await _existing(conn, "subscription", sub_id), expand)

    return await read(request, lookup)


@router.post("/v1/subscriptions/{sub_id}")
async def update_subscription(sub_id: str, request: Request) -> JSONResponse:
    """cancel_at_period_end, default_payment_method, metadata, and a new price for its one item:
    `proration_behavior=none` bills it from the next renewal, `always_invoice` charges the prorated
    difference now (a negative one is credited to the next invoice)."""
    params = await form(request, stripe_params.SubscriptionUpdateParams)
    base = state_of(request).base_url

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        await store.lock_clock(conn)
        sub, private = await _locked_subscription(conn, sub_id)
        work = Billing(conn, key, base, await billing.now(conn))
        changes: dict[str, Any] = {}
        if "cancel_at_period_end" in params:
            changes["cancel_at_period_end"] = flag(params, "cancel_at_period_end")
            changes["canceled_at"] = work.at if changes["cancel_at_period_end"] else None
        if "default_payment_method" in params:
            changes["default_payment_method"] = text(params, "default_payment_method", 255)
        if "metadata" in params:
            changes["metadata"] = {**sub["metadata"], **metadata(params["metadata"])}
        new_price = _new_price(params)
        await work.move(sub, private, **changes)
        if new_price is not None:
            price = billing.require_price(await store.get_object(conn, "price", new_price), new_price)
            await _switch_price(work, sub, private, price, params.get("proration_behavior"))
        return Answer(200, await _expanded(conn, sub, params.get("expand")))

    return await run(request, params, operation)


def _new_price(params: dict[str, Any]) -> str | None:
    listed = items(params.get("items"))
    if not listed or not isinstance(listed[0], dict) or not listed[0].get("price"):
        return None
    return str(listed[0]["price"])


async def _switch_price(
    work: Billing, sub: dict[str, Any], private: dict[str, Any], price: dict[str, Any], behavior: Any
) -> None:
    item = sub["items"]["data"][0]
    old, bounds = item["price"], (item["current_period_start"], item["current_period_end"])
    item["price"], item["plan"] = price, billing.plan_of(price)
    if behavior != "always_invoice" or sub["status"] not in ("active", "past_due"):
        await work.save(sub, private)
        await work.emit("customer.subscription.updated", sub, {"items": None})
        return
    charge, credit = billing.prorated(old, price, bounds, work.at)
    private["credit"] = private.get("credit", 0) + credit
    await work.save(sub, private)
    await work.emit("customer.subscription.updated", sub, {"items": None})
    if charge:
        invoice = work.new_invoice(sub, price, charge, (work.at, bounds[1]), "subscription_update")
        await work.issue(invoice)
        sub["latest_invoice"] = invoice["id"]
        await work.save(sub, private)
        await work.attempt(invoice, sub["default_payment_method"], off_session=True)


@router.delete("/v1/subscriptions/{sub_id}")
async def cancel_subscription(sub_id: str, request: Request) -> JSONResponse:
    params = {**query_params(request), **await form(request)}
    base = state_of(request).base_url

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        await store.lock_clock(conn)
        sub, private = await _locked_subscription(conn, sub_id)
        if sub["status"] == "canceled":
            raise SandboxError(400, f"No such subscription: '{sub_id}' is canceled.", code="resource_missing")
        work = Billing(conn, key, base, await billing.now(conn))
        await work.end(sub, private, "cancellation_requested")
        return Answer(200, sub)

    return await run(request, params, operation)


@router.get("/v1/invoices/{invoice_id}")
async def retrieve_invoice(invoice_id: str, request: Request) -> JSONResponse:
    return await read(request, lambda conn: _existing(conn, "invoice", invoice_id))


@router.post("/v1/invoices/{invoice_id}/pay")
async def pay_invoice(invoice_id: str, request: Request) -> JSONResponse:
    """Charge an open invoice now, out of its retry schedule, as Stripe does: with `payment_method` if given,
    else the subscription's default card, else its customer's. Paid, its subscription is active again; a
    declined card is a 402 card_error — the attempt is recorded (`invoice.payment_failed`) and the schedule
    goes on."""
    params = await form(request, stripe_params.InvoicePayParams)
    base = state_of(request).base_url

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        await store.lock_clock(conn)
        invoice = await _existing(conn, "invoice", invoice_id)
        if invoice["status"] != "open":
            raise SandboxError(400, f"Invoice is already {invoice['status']}.", code="invoice_not_open")
        sub, private = await _locked_subscription(conn, invoice["parent"]["subscription_details"]["subscription"])
        work = Billing(conn, key, base, await billing.now(conn))
        card = text(params, "payment_method", 255) or await work.card_of(sub)
        if card is None:
            raise SandboxError(
                400, "There is no payment method to pay this invoice with.", code="invoice_no_payment_method_types"
            )
        outcome = await work.pay_now(sub, private, invoice, card, off_session=params.get("off_session") != "false")
        if outcome == "paid":
            return Answer(200, await _existing(conn, "invoice", invoice_id))
        return _declined(outcome)

    return await run(request, params, operation)


def _declined(outcome: str) -> Answer:
    """Stripe's answer to an invoice payment the card refused (the refused attempt itself stays recorded)."""
    if outcome == "requires_action":
        message = "This payment requires additional user action before it can be completed successfully."
        error = SandboxError(402, message, type_="card_error", code="invoice_payment_intent_requires_action")
    else:
        error = SandboxError(402, "Your card was declined.", type_="card_error", code="card_declined",
                             extra={"decline_code": "generic_decline"})  # fmt: skip
    return Answer(error.status, error.body)


@router.get("/v1/test_helpers/sandbox_clock")
async def clock(request: Request) -> JSONResponse:
    async def lookup(conn: asyncpg.Connection) -> dict[str, Any]:
        return await _clock(conn)

    return await read(request, lookup)


@router.post("/v1/test_helpers/sandbox_clock/advance")
async def advance_clock(request: Request) -> JSONResponse:
    """Move the sandbox's clock forward by `days` (or `seconds`), running every renewal, retry and
    period-end cancellation that falls due, in order; their events are delivered as usual."""
    params = await form(request)
    base = state_of(request).base_url
    seconds = _seconds(params)

    async def operation(conn: asyncpg.Connection, key: str | None) -> Answer:
        _, ran = await billing.advance(conn, seconds, base, key)
        return Answer(200, {**await _clock(conn), "ran": ran})

    return await run(request, params, operation)


async def _clock(conn: asyncpg.Connection) -> dict[str, Any]:
    at = await billing.now(conn)
    return {"object": "sandbox_clock", "frozen_time": at, "offset_seconds": await store.clock_offset(conn)}


@router.get("/invoice/{invoice_id}", response_class=HTMLResponse)
async def hosted_invoice_page(invoice_id: str, request: Request) -> HTMLResponse:
    async with state_of(request).pool.acquire() as conn:
        invoice = await store.get_object(conn, "invoice", invoice_id)
    if invoice is None:
        return pages.page("Invoice not found", "<p>There is no invoice at this address.</p>", 404)
    amount = pages.money(invoice["amount_due"], invoice["currency"])
    if invoice["status"] != "open":
        return pages.page("Invoice", f"<p>{amount}</p><p>This invoice is {invoice['status']}.</p>")
    body = f"<p class=amount>{amount}</p>" + pages.button(f"/sandbox/invoice/{invoice_id}/pay", f"Pay {amount}", "pay")
    return pages.page("Pay invoice", body + pages.NOTE)


@router.post("/invoice/{invoice_id}/pay", response_class=HTMLResponse)
async def pay_hosted_invoice(invoice_id: str, request: Request) -> HTMLResponse:
    """The person pays with the sandbox's Visa test card, which becomes the subscription's default card."""
    state = state_of(request)
    async with state.pool.acquire() as conn, conn.transaction():
        await store.lock_clock(conn)
        invoice = await store.get_object(conn, "invoice", invoice_id)
        if invoice is None or invoice["status"] != "open":
            return pages.page("Nothing to do", "<p>This invoice is not waiting for payment.</p>", 400)
        sub_id = invoice["parent"]["subscription_details"]["subscription"]
        sub, private = await _locked_subscription(conn, sub_id)
        if sub["status"] in ("canceled", "incomplete_expired"):
            return pages.page("Nothing to do", "<p>This subscription has ended; its invoice cannot be paid.</p>", 400)
        work = Billing(conn, None, state.base_url, await billing.now(conn))
        sub["default_payment_method"] = "pm_card_visa"
        await work.pay_now(sub, private, invoice, "pm_card_visa", off_session=False)
    state.wake_deliverer()
    return pages.done("Invoice paid", "Invoice paid.")


async def _locked_subscription(conn: asyncpg.Connection, sub_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    locked = await store.lock_object(conn, "subscription", sub_id)
    if locked is None:
        raise missing("subscription", sub_id)
    return locked


async def _expanded(conn: asyncpg.Connection, sub: dict[str, Any], expand: Any) -> dict[str, Any]:
    wanted = {str(name) for name in items(expand)}
    if {"latest_invoice", "latest_invoice.payments"} & wanted and sub.get("latest_invoice"):
        return {**sub, "latest_invoice": await store.get_object(conn, "invoice", sub["latest_invoice"])}
    return sub


async def _existing(conn: asyncpg.Connection, kind: str, object_id: str, param: str = "id") -> dict[str, Any]:
    found = await store.get_object(conn, kind, object_id)
    if found is None:
        raise missing(kind, object_id, param)
    return found


def _recurring(raw: Any) -> dict[str, Any] | None:
    if not raw:
        return None
    if not isinstance(raw, dict) or raw.get("interval") not in ("day", "week", "month", "year"):
        raise SandboxError(400, "recurring[interval] must be day, week, month or year.", param="recurring")
    count = raw.get("interval_count", "1")
    return {"interval": raw["interval"], "interval_count": int(count) if str(count).isdigit() else 1,
            "meter": None, "trial_period_days": None, "usage_type": "licensed"}  # fmt: skip


def _amount(raw: Any) -> int:
    if not isinstance(raw, str) or not raw.isdigit():
        raise SandboxError(400, "Invalid integer: unit_amount", code="parameter_invalid_integer", param="unit_amount")
    return int(raw)


def _seconds(params: dict[str, Any]) -> int:
    days, seconds = str(params.get("days", "")), str(params.get("seconds", ""))
    if days.isdigit() and 0 < int(days) <= MAX_ADVANCE_DAYS:
        return int(days) * billing.DAY
    if seconds.isdigit() and 0 < int(seconds) <= MAX_ADVANCE_DAYS * billing.DAY:
        return int(seconds)
    raise SandboxError(400, f"Give days (1 to {MAX_ADVANCE_DAYS}) or seconds to advance the clock by.", param="days")
