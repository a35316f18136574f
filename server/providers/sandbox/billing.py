"""How the sandbox bills subscriptions, as Stripe Billing does, on a clock that tests can move forward.

A subscription starts with its first invoice (charged to its default payment method, or paid by the person
on the invoice's hosted page), or with a free trial. At each period's end the sandbox's clock brings the
renewal: an invoice for the subscription's price, charged to the saved card. A failed charge makes the
subscription `past_due` and is retried 1, 3 and 5 days later; when the last retry fails, the subscription
is canceled. A subscription set to cancel at its period's end is canceled then. `advance` runs everything
that falls due, in order, and emits Stripe's `invoice.*` and `customer.subscription.*` events.

Time here is the sandbox's clock (`now()` below): real time plus the offset `advance` added.
"""

from __future__ import annotations

import calendar
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from server.providers.sandbox import intents, movements, store
from server.providers.sandbox.api_customers import chosen_card
from server.providers.sandbox.events import emit, event
from server.providers.sandbox.objects import fill, invoice_template, subscription_template
from server.providers.sandbox.requests import SandboxError

INCOMPLETE_EXPIRES_AFTER = 23 * 3600
"""A subscription whose first invoice is not paid by then expires (Stripe's 23 hours)."""
RETRY_AFTER_DAYS = (1, 3, 5)
"""A failed renewal is tried again this many days after its first failure; after the last, the subscription ends."""
LIVE = ("trialing", "active", "past_due", "incomplete")
DAY = 86400
MAX_ADVANCE_DAYS = 3660
"""The furthest one advance moves the test clock."""


async def now(conn: asyncpg.Connection) -> int:
    """The sandbox's clock, in Unix seconds."""
    return int(time.time()) + await store.clock_offset(conn)


def shift(anchor: int, interval: str, count: int) -> int:
    """`anchor` moved by `count` intervals, as Stripe moves a billing cycle (the 31st becomes the 30th in April)."""
    moment = datetime.fromtimestamp(anchor, UTC)
    if interval == "day":
        return int((moment + timedelta(days=count)).timestamp())
    if interval == "week":
        return int((moment + timedelta(weeks=count)).timestamp())
    months = count * (12 if interval == "year" else 1)
    year, month = divmod(moment.month - 1 + months, 12)
    year += moment.year
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return int(moment.replace(year=year, month=month + 1, day=day).timestamp())


def period(private: dict[str, Any], index: int) -> tuple[int, int]:
    """The bounds of the subscription's `index`th paid period."""
    step = private["interval_count"]
    return (
        shift(private["anchor"], private["interval"], step * index),
        shift(private["anchor"], private["interval"], step * (index + 1)),
    )


@dataclass
class Billing:
    """One operation's work on the sandbox's billing objects: what it stores, and the events it emits in order."""

    conn: asyncpg.Connection
    key: str | None
    base_url: str
    at: int
    emitted: list[dict[str, Any]] = field(default_factory=list)

    async def emit(self, event_type: str, obj: dict[str, Any], previous: dict[str, Any] | None = None) -> None:
        notice = event(event_type, obj, self.key)
        notice["data"]["previous_attributes"] = previous
        await store.insert_event(self.conn, notice)
        for next_type, next_obj in await movements.follow(self.conn, event_type, obj):  # the money it moved
            await emit(self.conn, next_type, next_obj, self.key)

    async def save(self, sub: dict[str, Any], private: dict[str, Any]) -> None:
        await store.put(self.conn, sub, private)

    # --- invoices ----------------------------------------------------------------------------------

    def new_invoice(
        self, sub: dict[str, Any], price: dict[str, Any], amount: int, bounds: tuple[int, int], reason: str
    ) -> dict[str, Any]:
        invoice_id = "in_" + secrets.token_hex(12)
        line = _line(invoice_id, sub, price, amount, bounds, proration=reason == "subscription_update")
        return fill(
            invoice_template(invoice_id),
            amount_due=amount,
            amount_remaining=amount,
            subtotal=amount,
            total=amount,
            subtotal_excluding_tax=amount,
            total_excluding_tax=amount,
            currency=price["currency"],
            customer=sub["customer"],
            created=self.at,
            effective_at=self.at,
            period_start=bounds[0],
            period_end=bounds[1],
            status="open",
            billing_reason=reason,
            number=f"SBX-{secrets.token_hex(4).upper()}",
            hosted_invoice_url=f"{self.base_url}/invoice/{invoice_id}",
            default_payment_method=sub.get("default_payment_method"),
            parent={
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub["id"],
                                         "subscription_proration_date": None},
            },
            lines={"object": "list", "data": [line], "has_more": False, "url": f"/v1/invoices/{invoice_id}/lines"},
            payments={"object": "list", "data": [], "has_more": False, "url": "/v1/invoice_payments"},
            status_transitions={"finalized_at": self.at, "marked_uncollectible_at": None, "paid_at": None,
                                "voided_at": None},
        )  # fmt: skip

    async def issue(self, invoice: dict[str, Any]) -> None:
        await store.put(self.conn, invoice)
        await self.emit("invoice.created", invoice)
        await self.emit("invoice.finalized", invoice)

    async def attempt(self, invoice: dict[str, Any], payment_method: str | None, *, off_session: bool) -> str:
        """Charge the invoice: `paid`, `failed`, or `requires_action` (the person must authenticate)."""
        if invoice["amount_due"] == 0:
            return await self._paid(invoice, None)
        card = await chosen_card(self.conn, payment_method, invoice["customer"]) if payment_method else None
        if card is None:
            return "requires_action"
        params = {
            "amount": str(invoice["amount_due"]),
            "currency": invoice["currency"],
            "customer": invoice["customer"],
            "description": f"Invoice {invoice['number']}",
            "metadata": {"invoice": invoice["id"]},
            "confirm": "true",
            "off_session": "true" if off_session else "false",
        }
        outcome = intents.new_intent(params, card, self.base_url)
        await store.put(self.conn, outcome.intent)
        for event_type in outcome.event_types:
            await self.emit(event_type, outcome.intent)
        invoice["attempt_count"] += 1
        invoice["attempted"] = True
        if outcome.intent["status"] == "succeeded":
            return await self._paid(invoice, outcome.intent)
        await store.put(self.conn, invoice)
        await self.emit("invoice.payment_failed", invoice)
        return "requires_action" if outcome.intent["status"] == "requires_action" else "failed"

    async def _paid(self, invoice: dict[str, Any], intent: dict[str, Any] | None) -> str:
        invoice.update(status="paid", amount_paid=invoice["amount_due"], amount_remaining=0, next_payment_attempt=None)
        invoice["status_transitions"]["paid_at"] = self.at
        if intent is not None:
            invoice["payments"]["data"] = [_invoice_payment(invoice, intent, self.at)]
        await store.put(self.conn, invoice)
        await self.emit("invoice.paid", invoice)
        await self.emit("invoice.payment_succeeded", invoice)
        return "paid"

    async def pay_now(
        self,
        sub: dict[str, Any],
        private: dict[str, Any],
        invoice: dict[str, Any],
        card: str | None,
        *,
        off_session: bool,
    ) -> str:
        """The subscription's open invoice charged now, out of its schedule (its hosted page, `POST
        /v1/invoices/{id}/pay`): paid, the subscription is active and its retries stop; otherwise the schedule
        goes on. `paid`, `failed` or `requires_action`."""
        outcome = await self.attempt(invoice, card, off_session=off_session)
        if outcome == "paid":
            private["due_at"] = sub["items"]["data"][0]["current_period_end"]
            private["retries"], private["open_invoice"] = [], None
            await self.move(sub, private, status="active")
        return outcome

    # --- subscriptions -----------------------------------------------------------------------------

    async def card_of(self, sub: dict[str, Any]) -> str | None:
        """What the subscription's invoices are charged to, as Stripe chooses: its own default card, else its
        customer's (invoice_settings.default_payment_method)."""
        if sub.get("default_payment_method"):
            return sub["default_payment_method"]
        customer = await store.get_object(self.conn, "customer", sub["customer"]) or {}
        return (customer.get("invoice_settings") or {}).get("default_payment_method")

    async def move(self, sub: dict[str, Any], private: dict[str, Any], **changes: Any) -> None:
        previous = {name: sub[name] for name in changes if sub.get(name) != changes[name]}
        sub.update(changes)
        await self.save(sub, private)
        if sub["status"] == "canceled" and "status" in previous:
            await self.emit("customer.subscription.deleted", sub, previous)
        elif previous:
            await self.emit("customer.subscription.updated", sub, previous)

    async def set_period(self, sub: dict[str, Any], bounds: tuple[int, int]) -> None:
        item = sub["items"]["data"][0]
        item["current_period_start"], item["current_period_end"] = bounds

    async def end(self, sub: dict[str, Any], private: dict[str, Any], reason: str) -> None:
        """Canceled: nothing more falls due, and its open invoice is voided (nobody can pay it any more)."""
        private["due_at"] = None
        private["retries"] = []
        await self.void_open_invoice(sub)
        details = {"comment": None, "feedback": None, "feedback_option": None, "reason": reason}
        await self.move(
            sub, private, status="canceled", ended_at=self.at, canceled_at=sub.get("canceled_at") or self.at,
            cancellation_details=details,
        )  # fmt: skip

    async def renew(self, sub: dict[str, Any], private: dict[str, Any]) -> None:
        """The period ended: cancel if asked to, else invoice the next period and charge the saved card. An
        incomplete subscription's first invoice went unpaid: it expires, and its invoice is voided."""
        if sub["status"] == "incomplete":
            await self.expire_incomplete(sub, private)
            return
        if sub["cancel_at_period_end"]:
            await self.end(sub, private, "cancellation_requested")
            return
        private["index"] += 1
        bounds = period(private, private["index"])
        price = sub["items"]["data"][0]["price"]
        await self.set_period(sub, bounds)
        amount = max(price["unit_amount"] - private.get("credit", 0), 0)
        private["credit"] = max(private.get("credit", 0) - price["unit_amount"], 0)
        invoice = self.new_invoice(sub, price, amount, bounds, "subscription_cycle")
        await self.issue(invoice)
        private["due_at"] = bounds[1]
        outcome = await self.attempt(invoice, await self.card_of(sub), off_session=True)
        previous_status = sub["status"]
        sub["latest_invoice"] = invoice["id"]
        if outcome == "paid":
            await self.move(sub, private, status="active", trial_end=sub["trial_end"])
            if previous_status == "active":
                await self.emit("customer.subscription.updated", sub, {"items": None})
            return
        private["retries"] = [self.at + days * DAY for days in RETRY_AFTER_DAYS]
        private["open_invoice"] = invoice["id"]
        invoice["next_payment_attempt"] = private["retries"][0]
        await store.put(self.conn, invoice)
        await self.move(sub, private, status="past_due")

    async def expire_incomplete(self, sub: dict[str, Any], private: dict[str, Any]) -> None:
        private["due_at"] = None
        await self.void_open_invoice(sub)
        await self.move(sub, private, status="incomplete_expired", ended_at=self.at)

    async def void_open_invoice(self, sub: dict[str, Any]) -> None:
        latest = sub.get("latest_invoice")
        invoice = await store.get_object(self.conn, "invoice", latest) if latest else None
        if invoice is not None and invoice["status"] == "open":
            invoice["status"] = "void"
            invoice["status_transitions"]["voided_at"] = self.at
            await store.put(self.conn, invoice)
            await self.emit("invoice.voided", invoice)

    async def retry(self, sub: dict[str, Any], private: dict[str, Any]) -> None:
        """A due retry of the open invoice: paid restores the subscription; the last failure ends it."""
        private["retries"] = private["retries"][1:]
        invoice = await store.get_object(self.conn, "invoice", private["open_invoice"])
        assert invoice is not None
        outcome = await self.attempt(invoice, await self.card_of(sub), off_session=True)
        if outcome == "paid":
            private["retries"], private["open_invoice"] = [], None
            await self.move(sub, private, status="active")
        elif private["retries"]:
            invoice["next_payment_attempt"] = private["retries"][0]
            await store.put(self.conn, invoice)
            await self.save(sub, private)
        else:
            invoice.update(next_payment_attempt=None, status="uncollectible")
            invoice["status_transitions"]["marked_uncollectible_at"] = self.at
            await store.put(self.conn, invoice)
            await self.emit("invoice.marked_uncollectible", invoice)
            await self.end(sub, private, "payment_failed")


def next_due(private: dict[str, Any]) -> int | None:
    """When the subscription next needs the clock: a retry, or its period's end."""
    times = [moment for moment in [*private.get("retries", [])[:1], private.get("due_at")] if moment is not None]
    return min(times) if times else None


async def run_due(billing: Billing, until: int) -> int:
    """Run every renewal, retry and period-end cancellation due by `until`, the earliest first; how many ran."""
    ran = 0
    while True:
        due = await _earliest_due(billing.conn, until)
        if due is None:
            return ran
        moment, sub, private = due
        billing.at = moment
        if private.get("retries") and private["retries"][0] == moment:
            await billing.retry(sub, private)
        else:
            await billing.renew(sub, private)
        ran += 1


async def advance(conn: asyncpg.Connection, seconds: int, base_url: str, key: str | None = None) -> tuple[int, int]:
    """Move the clock forward by `seconds`, running what falls due meanwhile: (the new time, how many ran)."""
    await store.lock_clock(conn)
    work = Billing(conn, key, base_url, await now(conn))
    target = work.at + seconds
    ran = await run_due(work, target)
    await store.set_clock_offset(conn, await store.clock_offset(conn) + seconds)
    return target, ran


async def _earliest_due(conn: asyncpg.Connection, until: int) -> tuple[int, dict, dict] | None:
    earliest = None
    for sub, private in await store.live_subscriptions(conn):
        moment = next_due(private)
        if moment is not None and moment <= until and (earliest is None or moment < earliest[0]):
            earliest = (moment, sub, private)
    return earliest


def new_subscription(
    sub_id: str, params: dict[str, Any], price: dict[str, Any], customer: str, at: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The subscription as created, before its first invoice: its period, or its trial."""
    recurring = price["recurring"]
    trial_days = int(params["trial_period_days"]) if str(params.get("trial_period_days", "")).isdigit() else 0
    anchor = at + trial_days * DAY
    private = {"interval": recurring["interval"], "interval_count": recurring["interval_count"], "anchor": anchor,
               "index": -1 if trial_days else 0, "retries": [], "credit": 0}  # fmt: skip
    bounds = (at, anchor) if trial_days else period(private, 0)
    item = _item(sub_id, price, bounds, at)
    sub = fill(
        subscription_template(sub_id),
        customer=customer,
        created=at,
        start_date=at,
        billing_cycle_anchor=anchor,
        currency=price["currency"],
        default_payment_method=params.get("default_payment_method") or None,
        description=params.get("description"),
        metadata=dict(params.get("metadata") or {}),
        items={"object": "list", "data": [item], "has_more": False, "total_count": 1,
               "url": f"/v1/subscription_items?subscription={sub_id}"},
        trial_start=at if trial_days else None,
        trial_end=anchor if trial_days else None,
        status="trialing" if trial_days else "incomplete",
    )  # fmt: skip
    private["due_at"] = bounds[1] if trial_days else None
    return sub, private


def prorated(old: dict[str, Any], new: dict[str, Any], bounds: tuple[int, int], at: int) -> tuple[int, int]:
    """What switching from `old` to `new` at `at` costs for the rest of the period: the new price for the unused
    fraction (rounded down) less the old price's unused part given back (rounded up) — every rounding in the
    customer's favour. (charge, credit) in minor units; at most one of them is not zero."""
    unused, length = max(bounds[1] - at, 0), max(bounds[1] - bounds[0], 1)
    charge_new = new["unit_amount"] * unused // length
    credit_old = -(-old["unit_amount"] * unused // length)
    net = charge_new - credit_old
    return (net, 0) if net > 0 else (0, -net)


def require_price(price: dict[str, Any] | None, price_id: Any) -> dict[str, Any]:
    if price is None:
        raise SandboxError(404, f"No such price: '{str(price_id)[:64]}'", code="resource_missing", param="items")
    if price.get("recurring") is None:
        raise SandboxError(400, "The price specified is not recurring; a subscription needs a recurring price.",
                           param="items")  # fmt: skip
    return price


def _item(sub_id: str, price: dict[str, Any], bounds: tuple[int, int], at: int) -> dict[str, Any]:
    return {
        "id": "si_" + secrets.token_hex(7), "object": "subscription_item", "billed_until": None,
        "billing_thresholds": None, "created": at, "current_period_end": bounds[1],
        "current_period_start": bounds[0], "current_trial": None, "deleted": None, "discounts": [], "metadata": {},
        "plan": plan_of(price), "price": price, "quantity": 1, "subscription": sub_id, "tax_rates": [],
    }  # fmt: skip


def plan_of(price: dict[str, Any]) -> dict[str, Any]:
    """The legacy Plan Stripe still shows beside a subscription item's recurring Price."""
    recurring = price["recurring"]
    return {
        "id": price["id"], "object": "plan", "active": price["active"], "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"], "billing_scheme": "per_unit", "created": price["created"],
        "currency": price["currency"], "deleted": None, "interval": recurring["interval"],
        "interval_count": recurring["interval_count"], "livemode": False, "metadata": price["metadata"],
        "meter": None, "nickname": price["nickname"], "product": price["product"], "tiers": None,
        "tiers_mode": None, "transform_usage": None, "trial_period_days": None, "usage_type": "licensed",
    }  # fmt: skip


def _line(
    invoice_id: str, sub: dict[str, Any], price: dict[str, Any], amount: int, bounds: tuple[int, int], proration: bool
) -> dict[str, Any]:
    item = sub["items"]["data"][0]["id"]
    return {
        "id": "il_" + secrets.token_hex(10), "object": "line_item", "amount": amount, "currency": price["currency"],
        "description": price.get("nickname") or price["product"], "discount_amounts": [], "discountable": True,
        "discounts": [], "invoice": invoice_id, "livemode": False, "metadata": {},
        "parent": {"type": "subscription_item_details", "invoice_item_details": None,
                   "subscription_item_details": {"invoice_item": None, "proration": proration,
                                                 "proration_details": None, "subscription": sub["id"],
                                                 "subscription_item": item}},
        "period": {"start": bounds[0], "end": bounds[1]}, "pretax_credit_amounts": [],
        "pricing": {"type": "price_details", "price_details": {"price": price["id"], "product": price["product"]},
                    "unit_amount_decimal": str(price["unit_amount"])},
        "quantity": 1, "quantity_decimal": "1", "subscription": sub["id"], "subtotal": amount, "taxes": [],
    }  # fmt: skip


def _invoice_payment(invoice: dict[str, Any], intent: dict[str, Any], at: int) -> dict[str, Any]:
    return {
        "id": "inpay_" + secrets.token_hex(10), "object": "invoice_payment", "amount_paid": intent["amount"],
        "amount_requested": intent["amount"], "created": at, "currency": invoice["currency"],
        "invoice": invoice["id"], "is_default": True, "livemode": False,
        "payment": {"type": "payment_intent", "payment_intent": intent["id"]}, "status": "paid",
        "status_transitions": {"canceled_at": None, "paid_at": at},
    }  # fmt: skip
