"""The Stripe adapter, on the official SDK: payment intents (a saved card charged off-session, with the person
brought back when the card needs them), Checkout Sessions (a page where the person pays, or saves a card),
customers, refunds, the event list, and Stripe's own signature checks.

It sends only parameters of Stripe's API, each call with an idempotency key derived from our own ids,
so a retry never does anything twice. The sandbox provider speaks the same HTTP API, so this adapter
serves both; only the base address and the keys differ.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import replace
from typing import Any

import stripe

from server.config import PROVIDER_ATTEMPTS
from server.errors import MalformedEvent, ProviderError, ProviderUnavailable, WebhookRejected
from server.providers import stripe_billing
from server.providers.base import (
    BalanceMovement,
    CardChange,
    ChargeRequest,
    CustomerRequest,
    EventPage,
    PlanChange,
    PlanPrice,
    ProviderCard,
    ProviderCustomer,
    ProviderInvoice,
    ProviderPayment,
    ProviderRefund,
    ProviderSetup,
    ProviderSubscription,
    RefundRequest,
    SetupRequest,
    SubscriptionRequest,
    UnreadableEvent,
    WebhookEvent,
)
from server.providers.stripe_amounts import check_chargeable, to_stripe
from server.providers.stripe_billing import invoice_from_object, subscription_from_object
from server.providers.stripe_objects import (
    NEEDS_THE_PERSON,
    as_text,
    balance_movement,
    card_from_method,
    event_from_payload,
    payment_from_intent,
    payment_from_session,
    refund_from_object,
    setup_from_intent,
    setup_from_session,
)

__all__ = ["StripeProvider", "event_from_payload"]

PRODUCT_NAME_LIMIT = 250


class StripeProvider:
    def __init__(
        self,
        *,
        name: str,
        api_key: str,
        webhook_secret: str | None,
        public_url: str | None,
        api_base: str | None = None,
        timeout_seconds: float = 20.0,
        webhook_tolerance_seconds: int = 300,
        unreachable_hint: str = "",
    ) -> None:
        """`public_url`: where paywarden's own pages are (the person comes back there from Stripe's pages);
        None sends no return addresses, which only the sandbox accepts."""
        self.name = name
        self._unreachable_hint = unreachable_hint
        self._webhook_secret = webhook_secret
        self._pages = _ReturnPages(public_url.rstrip("/")) if public_url else None
        self._tolerance = webhook_tolerance_seconds
        self._http = stripe.HTTPXClient(timeout=timeout_seconds)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=self._http,
            max_network_retries=PROVIDER_ATTEMPTS - 1,
        )

    async def create_payment(self, request: ChargeRequest) -> ProviderPayment:
        """A saved or given card is charged now; without one, a Checkout Session is the person's page."""
        if request.payment_method is None:
            return await self._payment_page(request)
        options: dict[str, Any] = {"idempotency_key": request.payment_id}
        try:
            intent = await self._client.v1.payment_intents.create_async(_intent_params(request, self._pages), options)
        except stripe.CardError as error:
            if request.off_session and error.code == NEEDS_THE_PERSON:
                return await self._bring_the_person(error, request)
            return _declined(error)
        except stripe.StripeError as error:
            return self._refused_or_unavailable(error)
        return payment_from_intent(intent.to_dict())

    async def _bring_the_person(self, error: stripe.CardError, request: ChargeRequest) -> ProviderPayment:
        """The saved card needs its holder (3-D Secure): confirm the same intent again for them, which gives
        the page where they authenticate. Nothing is charged until they do."""
        intent_id = _declined(error).provider_payment_id
        if intent_id is None:
            return _declined(error)
        params: dict[str, Any] = {"payment_method": request.payment_method}
        if self._pages:
            params["return_url"] = self._pages.paid
        options: dict[str, Any] = {"idempotency_key": f"{request.payment_id}-with-the-person"}
        try:
            intent = await self._client.v1.payment_intents.confirm_async(intent_id, params, options)
        except stripe.CardError as declined:
            return _declined(declined)
        except stripe.StripeError as failure:
            return self._refused_or_unavailable(failure)
        return payment_from_intent(intent.to_dict())

    async def _payment_page(self, request: ChargeRequest) -> ProviderPayment:
        params = _payment_page_params(request, self._pages)
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                params, {"idempotency_key": request.payment_id}
            )
        except stripe.StripeError as error:
            return self._refused_or_unavailable(error)
        return payment_from_session(session.to_dict())

    async def retrieve_payment_page(self, checkout_id: str) -> ProviderPayment:
        try:
            session = await self._client.v1.checkout.sessions.retrieve_async(checkout_id)
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        return payment_from_session(session.to_dict())

    async def create_customer(self, request: CustomerRequest) -> ProviderCustomer:
        params: dict[str, Any] = {
            "metadata": {"tenant_id": request.tenant_id, "customer_id": request.customer_id},
            "description": f"paywarden customer {request.customer_id[:200]} (tenant {request.tenant_id})",
        }
        key = "customer-" + hashlib.sha256(f"{request.tenant_id}\x1f{request.customer_id}".encode()).hexdigest()
        try:
            customer = await self._client.v1.customers.create_async(params, {"idempotency_key": key})
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        return _customer(customer.to_dict())

    async def retrieve_customer(self, provider_customer_id: str) -> ProviderCustomer | None:
        try:
            customer = await self._client.v1.customers.retrieve_async(provider_customer_id)
        except stripe.InvalidRequestError as error:
            if error.http_status == 404:
                return None
            raise self._unavailable(error) from error
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        found = customer.to_dict()
        return None if found.get("deleted") else _customer(found)

    async def list_cards(self, provider_customer_id: str) -> list[ProviderCard]:
        try:
            page = await self._client.v1.customers.payment_methods.list_async(
                provider_customer_id, {"type": "card", "limit": 100}
            )
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        cards = [card_from_method(method.to_dict()) for method in page.data]
        return [card for card in cards if card is not None]

    async def create_setup(self, request: SetupRequest) -> ProviderSetup:
        params = _setup_page_params(request, self._pages)
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                params, {"idempotency_key": request.setup_id}
            )
        except stripe.InvalidRequestError as error:
            if error.http_status in (400, 402, 404):
                return ProviderSetup(None, "failed", setup_id=request.setup_id, failure_reason=_safe_message(error))
            raise self._unavailable(error) from error
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        return setup_from_session(session.to_dict())

    async def saved_card(self, setup: ProviderSetup) -> ProviderSetup:
        if setup.card is not None or setup.status != "succeeded":
            return setup
        try:
            setup_intent_id = setup.setup_intent_id or await self._setup_intent_of(setup.provider_setup_id)
            if setup_intent_id is None:
                return setup
            found = await self._client.v1.setup_intents.retrieve_async(setup_intent_id, {"expand": ["payment_method"]})
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        with_card = setup_from_intent(found.to_dict(), setup.status)
        return replace(
            setup,
            setup_id=setup.setup_id or with_card.setup_id,
            setup_intent_id=setup_intent_id,
            payment_method_id=with_card.payment_method_id,
            card=with_card.card,
        )

    async def _setup_intent_of(self, checkout_id: str | None) -> str | None:
        if checkout_id is None:
            return None
        session = await self._client.v1.checkout.sessions.retrieve_async(checkout_id)
        return setup_from_session(session.to_dict()).setup_intent_id

    async def create_refund(self, request: RefundRequest) -> ProviderRefund:
        params: dict[str, Any] = {
            "payment_intent": request.provider_payment_id,
            "amount": to_stripe(request.amount_minor, request.currency),
            "metadata": {"refund_id": request.refund_id, "payment_id": request.payment_id},
        }
        if request.reason:
            params["metadata"]["reason"] = request.reason[:500]
        try:
            refund = await self._client.v1.refunds.create_async(params, {"idempotency_key": request.refund_id})
        except stripe.InvalidRequestError as error:
            if error.http_status in (400, 402, 404):
                return ProviderRefund(None, "failed", failure_reason=_safe_message(error))
            raise self._unavailable(error) from error
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        return refund_from_object(refund.to_dict())

    async def retrieve_refund(self, provider_refund_id: str) -> ProviderRefund:
        try:
            refund = await self._client.v1.refunds.retrieve_async(provider_refund_id)
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        return refund_from_object(refund.to_dict())

    async def create_subscription(self, request: SubscriptionRequest) -> ProviderSubscription:
        price_id = await self._price_of(request.plan)
        try:
            request, card = await self._with_saved_card(request)
            params = stripe_billing.subscription_params(request, price_id)
            sub = await self._client.v1.subscriptions.create_async(params, {"idempotency_key": request.subscription_id})
        except stripe.CardError as error:
            raise ProviderError(f"The card was declined: {_safe_message(error)}") from error
        except stripe.StripeError as error:
            raise self._refused(error) from error
        started = await self._with_invoice_payments(subscription_from_object(sub.to_dict()))
        return replace(started, saved_card=card)

    async def _with_saved_card(self, request: SubscriptionRequest) -> tuple[SubscriptionRequest, ProviderCard | None]:
        """A card given for the subscription (pm_card_visa) is saved to the customer first: every renewal
        charges it. The card saved, if one was."""
        if not request.payment_method or request.payment_method_saved:
            return request, None
        method = await self._client.v1.payment_methods.attach_async(
            request.payment_method,
            {"customer": request.provider_customer_id},
            {"idempotency_key": f"{request.subscription_id}-card"},
        )
        saved = replace(request, payment_method=method.id, payment_method_saved=True)
        return saved, card_from_method(method.to_dict())

    async def retrieve_subscription(self, provider_subscription_id: str) -> ProviderSubscription:
        try:
            sub = await self._client.v1.subscriptions.retrieve_async(
                provider_subscription_id, {"expand": ["latest_invoice.payments"]}
            )
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        return await self._with_invoice_payments(subscription_from_object(sub.to_dict()))

    async def retrieve_invoice(self, provider_invoice_id: str) -> ProviderInvoice:
        try:
            invoice = await self._client.v1.invoices.retrieve_async(provider_invoice_id, {"expand": ["payments"]})
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        return invoice_from_object(invoice.to_dict())

    async def _with_invoice_payments(self, sub: ProviderSubscription) -> ProviderSubscription:
        """A subscription answered without its latest invoice's payments (an SDK or API that did not expand
        them): the invoice fetched again with them."""
        latest = sub.latest_invoice
        if latest is None or latest.status != "paid" or latest.provider_payment_id or not latest.amount_minor:
            return sub
        return replace(sub, latest_invoice=await self.retrieve_invoice(latest.provider_invoice_id))

    async def cancel_subscription(
        self, provider_subscription_id: str, *, at_period_end: bool, idempotency_key: str
    ) -> ProviderSubscription:
        options: dict[str, Any] = {"idempotency_key": idempotency_key}
        try:
            if at_period_end:
                params: dict[str, Any] = {"cancel_at_period_end": True, "expand": ["latest_invoice.payments"]}
                sub = await self._client.v1.subscriptions.update_async(provider_subscription_id, params, options)
            else:
                sub = await self._client.v1.subscriptions.cancel_async(
                    provider_subscription_id, {"expand": ["latest_invoice.payments"]}, options
                )
        except stripe.StripeError as error:
            raise self._refused(error) from error
        return subscription_from_object(sub.to_dict())

    async def change_subscription(self, change: PlanChange) -> ProviderSubscription:
        price_id = await self._price_of(change.plan)
        try:
            current = await self._client.v1.subscriptions.retrieve_async(change.provider_subscription_id)
            item = current.to_dict()["items"]["data"][0]["id"]
            params: dict[str, Any] = {
                "items": [{"id": item, "price": price_id}],
                "proration_behavior": "always_invoice" if change.now else "none",
                "metadata": {"product_id": change.plan.product_id},
                "expand": ["latest_invoice.payments"],
            }
            sub = await self._client.v1.subscriptions.update_async(
                change.provider_subscription_id, params, {"idempotency_key": change.idempotency_key}
            )
        except stripe.StripeError as error:
            raise self._refused(error) from error
        return subscription_from_object(sub.to_dict())

    async def use_card(self, change: CardChange) -> ProviderSubscription:
        """The customer's invoice default first (what Stripe charges when a subscription names no card), then the
        subscription's own default, which Stripe charges before the customer's."""
        card = change.provider_payment_method_id
        try:
            await self._client.v1.customers.update_async(
                change.provider_customer_id,
                {"invoice_settings": {"default_payment_method": card}},
                {"idempotency_key": f"{change.idempotency_key}-customer"},
            )
            sub = await self._client.v1.subscriptions.update_async(
                change.provider_subscription_id,
                {"default_payment_method": card, "expand": ["latest_invoice.payments"]},
                {"idempotency_key": f"{change.idempotency_key}-subscription"},
            )
        except stripe.StripeError as error:
            raise self._refused(error) from error
        return await self._with_invoice_payments(subscription_from_object(sub.to_dict()))

    async def pay_invoice(self, provider_invoice_id: str, *, idempotency_key: str) -> ProviderInvoice:
        try:
            invoice = await self._client.v1.invoices.pay_async(
                provider_invoice_id, {"expand": ["payments"]}, {"idempotency_key": idempotency_key}
            )
        except stripe.CardError as error:
            raise ProviderError(f"The card was declined: {_safe_message(error)}") from error
        except stripe.StripeError as error:
            raise self._refused(error) from error
        return invoice_from_object(invoice.to_dict())

    async def sync_price(self, plan: PlanPrice) -> str:
        current = await self._price_by_lookup_key(plan.product_id)
        if current is not None and stripe_billing.price_matches(current, plan):
            return "unchanged"
        try:
            product = await self._product_for(plan)
            params = stripe_billing.price_params(plan, product)
            key = "price-" + hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
            await self._client.v1.prices.create_async(params, {"idempotency_key": key})
            if current is not None:
                await self._client.v1.prices.update_async(current["id"], {"active": False})
        except stripe.StripeError as error:
            raise self._refused(error) from error
        return "created" if current is None else "replaced"

    async def _price_of(self, plan: PlanPrice) -> str:
        """The Price that bills the plan (created when the catalog was never synced)."""
        await self.sync_price(plan)
        price = await self._price_by_lookup_key(plan.product_id)
        if price is None:
            raise ProviderUnavailable(f"The provider shows no price for {plan.product_id!r}; try again.")
        return str(price["id"])

    async def _price_by_lookup_key(self, lookup_key: str) -> dict[str, Any] | None:
        try:
            listed = await self._client.v1.prices.list_async({"lookup_keys": [lookup_key], "active": True})
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        prices = [price.to_dict() for price in listed.data]
        return prices[0] if prices else None

    async def _product_for(self, plan: PlanPrice) -> str:
        product_id = stripe_billing.product_id_at_provider(plan)
        try:
            product = await self._client.v1.products.retrieve_async(product_id)
        except stripe.InvalidRequestError as error:
            if error.http_status != 404:
                raise
            params: dict[str, Any] = {"id": product_id, "name": plan.name[:PRODUCT_NAME_LIMIT],
                                      "metadata": {"product_id": plan.product_id}}  # fmt: skip
            await self._client.v1.products.create_async(params, {"idempotency_key": f"product-{product_id}"})
            return product_id
        if product.name != plan.name[:PRODUCT_NAME_LIMIT]:
            await self._client.v1.products.update_async(product_id, {"name": plan.name[:PRODUCT_NAME_LIMIT]})
        return product_id

    def _refused(self, error: stripe.StripeError) -> ProviderError:
        """A definite refusal says why; anything else leaves the outcome unknown."""
        if isinstance(error, stripe.InvalidRequestError) and error.http_status in (400, 402, 404):
            return ProviderError(f"The payment provider refused: {_safe_message(error)}")
        return self._unavailable(error)

    def check_chargeable(self, amount_minor: int, currency: str) -> None:
        check_chargeable(amount_minor, currency)

    async def balance_movements(self, created_from: int, created_before: int) -> list[BalanceMovement]:
        params: dict[str, Any] = {
            "created": {"gte": created_from, "lt": created_before},
            "limit": 100,
            "expand": ["data.source"],
        }
        found: list[BalanceMovement] = []
        try:
            while True:
                page = await self._client.v1.balance_transactions.list_async(params)
                found.extend(balance_movement(txn.to_dict()) for txn in page.data)
                if not page.has_more or not page.data:
                    return found
                params["starting_after"] = page.data[-1].id
        except stripe.StripeError as error:
            raise self._unavailable(error) from error

    async def submit_dispute_evidence(self, provider_dispute_id: str, evidence: dict[str, str]) -> None:
        content = json.dumps(evidence, sort_keys=True).encode()
        key = f"dispute-evidence-{provider_dispute_id}-{hashlib.sha256(content).hexdigest()[:32]}"
        params: dict[str, Any] = {"evidence": evidence, "submit": True}
        try:
            await self._client.v1.disputes.update_async(provider_dispute_id, params, {"idempotency_key": key})
        except stripe.InvalidRequestError as error:
            if error.http_status in (400, 404):
                raise ProviderError(f"The provider refused the evidence: {_safe_message(error)}") from error
            raise self._unavailable(error) from error
        except stripe.StripeError as error:
            raise self._unavailable(error) from error

    async def cancel_payment(self, provider_payment_id: str) -> None:
        """Close the intent so nobody can pay it later (after we recorded it as failed)."""
        try:
            await self._client.v1.payment_intents.cancel_async(provider_payment_id)
        except stripe.InvalidRequestError as error:
            if error.code != "payment_intent_unexpected_state":  # already canceled or settled: fine
                raise self._unavailable(error) from error
        except stripe.StripeError as error:
            raise self._unavailable(error) from error

    async def retrieve_payment(self, provider_payment_id: str) -> ProviderPayment:
        try:
            intent = await self._client.v1.payment_intents.retrieve_async(provider_payment_id)
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        return payment_from_intent(intent.to_dict())

    async def events_after(self, event_id: str | None, *, created_since: int, limit: int) -> EventPage | None:
        try:
            if event_id is not None:
                page = await self._client.v1.events.list_async({"ending_before": event_id, "limit": limit})
                return EventPage(_events_oldest_first(page.data), page.has_more)
            newest_first = await self._events_since(created_since)
        except stripe.InvalidRequestError as error:
            if error.code == "resource_missing":
                return None
            raise self._unavailable(error) from error
        except stripe.StripeError as error:
            raise self._unavailable(error) from error
        oldest_first = _events_oldest_first(newest_first)
        return EventPage(oldest_first[:limit], len(oldest_first) > limit)

    async def _events_since(self, created_since: int) -> list[Any]:
        """Stripe lists newest first, so the oldest event since a time is found by reading back to it."""
        params: dict[str, Any] = {"created": {"gte": created_since}, "limit": 100}
        found: list[Any] = []
        while True:
            page = await self._client.v1.events.list_async(params)
            found.extend(page.data)
            if not page.has_more or not page.data:
                return found
            params["starting_after"] = page.data[-1].id

    def verify_webhook(self, payload: bytes, signature_header: str | None, secrets: str | None = None) -> WebhookEvent:
        """Accepts a signature by any of the configured secrets (comma-separated), so a secret can be
        rotated without losing events: add the new one, then remove the old one."""
        accepted = _split_secrets(secrets or self._webhook_secret or "")
        if not accepted:
            raise WebhookRejected("This process does not receive webhooks.")
        if not signature_header:
            raise WebhookRejected("Missing Stripe-Signature header; nothing was stored.")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise WebhookRejected("The body is not UTF-8; nothing was stored.") from None
        problems = [self._signature_problem(text, signature_header, secret) for secret in accepted]
        if None not in problems:
            raise WebhookRejected(_most_telling(problems))
        return event_from_payload(_parse_json(text), raw=text)

    def _signature_problem(self, text: str, header: str, secret: str) -> str | None:
        try:
            stripe.WebhookSignature.verify_header(text, header, secret, self._tolerance)
            _reject_future_timestamp(header, self._tolerance)
        except stripe.SignatureVerificationError as error:
            return _signature_problem(str(error), self._tolerance)
        return None

    def _refused_or_unavailable(self, error: stripe.StripeError) -> ProviderPayment:
        """A definite refusal (an invalid request) is a failed payment; anything else leaves the outcome
        unknown."""
        if isinstance(error, stripe.InvalidRequestError) and error.http_status in (400, 402, 404):
            return ProviderPayment(None, "failed", failure_reason=_safe_message(error))
        raise self._unavailable(error) from error

    def _unavailable(self, error: stripe.StripeError) -> ProviderError:
        if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
            return ProviderError(
                "The payment provider refused paywarden's API key; the operator must fix its configuration. "
                "Nothing was charged."
            )
        return ProviderUnavailable(ProviderUnavailable().message + self._unreachable_hint)

    async def close(self) -> None:
        await self._http.close_async()


class _ReturnPages:
    """paywarden's own pages the person comes back to from the provider's."""

    def __init__(self, public_url: str) -> None:
        self.paid = f"{public_url}/payments/complete"
        self.not_paid = f"{public_url}/payments/canceled"
        self.card_saved = f"{public_url}/cards/saved"
        self.card_not_saved = f"{public_url}/cards/not-saved"


def _metadata(request: ChargeRequest) -> dict[str, str]:
    metadata = {"payment_id": request.payment_id, "customer_id": request.customer_id}
    if request.product_id:
        metadata["product_id"] = request.product_id
    return metadata


def _intent_params(request: ChargeRequest, pages: _ReturnPages | None) -> dict[str, Any]:
    """A payment intent confirmed at once with the given card; a saved card is charged off-session."""
    params: dict[str, Any] = {
        "amount": to_stripe(request.amount_minor, request.currency),
        "currency": request.currency.lower(),
        "metadata": _metadata(request),
        "allowed_payment_method_types": ["card"],
        "payment_method": request.payment_method,
        "confirm": True,
    }
    if request.description:
        params["description"] = request.description
    if request.off_session:
        params.update(customer=request.provider_customer_id, off_session=True)
    elif pages:
        params["return_url"] = pages.paid
    return params


def _payment_page_params(request: ChargeRequest, pages: _ReturnPages | None) -> dict[str, Any]:
    """A Checkout Session in payment mode: one line for the charge, our payment id on the session and on
    the payment intent Checkout makes, and a closing time."""
    metadata = _metadata(request)
    name = request.description or request.product_id or "Payment"
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": request.currency.lower(),
                    "unit_amount": to_stripe(request.amount_minor, request.currency),
                    "product_data": {"name": name[:PRODUCT_NAME_LIMIT]},
                },
                "quantity": 1,
            }
        ],
        "allowed_payment_method_types": ["card"],
        "client_reference_id": request.payment_id,
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
    }
    if request.description:
        params["payment_intent_data"]["description"] = request.description
    if request.page_expires_at is not None:
        params["expires_at"] = request.page_expires_at
    if pages:
        params.update(success_url=pages.paid, cancel_url=pages.not_paid)
    return params


def _setup_page_params(request: SetupRequest, pages: _ReturnPages | None) -> dict[str, Any]:
    """A Checkout Session in setup mode: the person saves a card to the customer for later charges."""
    metadata = {"setup_id": request.setup_id, "customer_id": request.customer_id, "tenant_id": request.tenant_id}
    params: dict[str, Any] = {
        "mode": "setup",
        "customer": request.provider_customer_id,
        "allowed_payment_method_types": ["card"],
        "client_reference_id": request.setup_id,
        "metadata": metadata,
        "setup_intent_data": {"metadata": metadata},
        "expires_at": request.page_expires_at,
    }
    if pages:
        params.update(success_url=pages.card_saved, cancel_url=pages.card_not_saved)
    return params


def _customer(customer: dict[str, Any]) -> ProviderCustomer:
    settings = customer.get("invoice_settings") or {}
    default = settings.get("default_payment_method")
    return ProviderCustomer(customer["id"], default.get("id") if isinstance(default, dict) else default)


def _split_secrets(secrets: str) -> list[str]:
    return [secret.strip() for secret in secrets.split(",") if secret.strip()]


def _events_oldest_first(newest_first: list[Any]) -> list[WebhookEvent | UnreadableEvent]:
    return [_listed_event(event) for event in reversed(newest_first)]


def _listed_event(event: Any) -> WebhookEvent | UnreadableEvent:
    """One event of the provider's list; one paywarden cannot read does not stop the others. The SDK reads
    decimal strings (a price's unit_amount_decimal) as Decimal: written back as the strings Stripe sent."""
    payload = json.loads(json.dumps(event.to_dict(), default=str))
    try:
        return event_from_payload(payload)
    except MalformedEvent as error:
        return UnreadableEvent(event_id=str(event.id), raw=error.raw or as_text(payload), reason=error.message)


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise MalformedEvent("The body is not valid JSON (or is nested too deeply).", text) from None


def _declined(error: stripe.CardError) -> ProviderPayment:
    body = error.json_body if isinstance(error.json_body, dict) else {}
    intent = (body.get("error") or {}).get("payment_intent")
    reason = _safe_message(error)
    if isinstance(intent, dict):
        return replace(payment_from_intent(intent), status="failed", next_action_url=None, failure_reason=reason)
    return ProviderPayment(None, "failed", failure_reason=reason)


def _safe_message(error: stripe.StripeError) -> str:
    """The provider's reason, for the agent: without the SDK's advice to write to the provider's support."""
    message = error.user_message or getattr(error, "_message", None) or ""
    sentences = [s for s in _SENTENCE_END.split(message) if s and "support@" not in s and "stripe.com" not in s]
    return (" ".join(sentences) or "the provider refused the payment")[:500]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _reject_future_timestamp(signature_header: str, tolerance_seconds: int) -> None:
    """Stripe's check only looks back in time; a signature dated past the tolerance ahead is as stale."""
    stamps = [part[2:] for part in signature_header.split(",") if part.strip().startswith("t=")]
    if stamps and stamps[0].strip().isdigit() and int(stamps[0]) > time.time() + tolerance_seconds:
        raise stripe.SignatureVerificationError("Timestamp outside the tolerance zone", signature_header)


def _most_telling(problems: list[str | None]) -> str:
    """With several secrets, "stale" or "malformed" says more than "no signature matches"."""
    for marker in ("Stale", "Malformed"):
        for problem in problems:
            if problem and problem.startswith(marker):
                return problem
    return next(problem for problem in problems if problem)


def _signature_problem(stripe_message: str, tolerance_seconds: int) -> str:
    if "tolerance" in stripe_message:
        return (
            f"Stale Stripe-Signature: its timestamp is more than {tolerance_seconds} seconds "
            "from now; nothing was stored."
        )
    if "Unable to extract" in stripe_message:
        return "Malformed Stripe-Signature header; nothing was stored."
    return "Invalid Stripe-Signature: no signature matches this body; nothing was stored."
