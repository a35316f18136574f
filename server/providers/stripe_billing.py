"""Stripe Billing in paywarden's words: subscriptions and invoices (API 2026-10-28: a subscription's period is
on its item, an invoice names its subscription under `parent` and its payment intents under `payments`),
and the parameters paywarden sends for them."""

from __future__ import annotations

from typing import Any

from server.money import EXPONENTS
from server.providers.base import PlanPrice, ProviderInvoice, ProviderSubscription, SubscriptionRequest
from server.providers.stripe_amounts import from_stripe, to_stripe

SUBSCRIPTION_EVENT_PREFIX = "customer.subscription."
INVOICE_EVENT_PREFIX = "invoice."


def subscription_from_object(sub: dict[str, Any]) -> ProviderSubscription:
    item = _first(((sub.get("items") or {}).get("data")) or [])
    metadata = sub.get("metadata") or {}
    latest = sub.get("latest_invoice")
    return ProviderSubscription(
        provider_subscription_id=str(sub["id"]),
        status=str(sub.get("status")),
        subscription_id=metadata.get("subscription_id"),
        product_id=metadata.get("product_id"),
        current_period_start=item.get("current_period_start"),
        current_period_end=item.get("current_period_end"),
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
        canceled_at=sub.get("canceled_at"),
        ended_at=sub.get("ended_at"),
        trial_end=sub.get("trial_end"),
        latest_invoice=invoice_from_object(latest) if isinstance(latest, dict) else None,
        latest_invoice_id=latest.get("id") if isinstance(latest, dict) else latest,
    )


def invoice_from_object(invoice: dict[str, Any]) -> ProviderInvoice:
    details = ((invoice.get("parent") or {}).get("subscription_details")) or {}
    metadata = details.get("metadata") or {}
    line = _first(((invoice.get("lines") or {}).get("data")) or [])
    bounds = line.get("period") or {}
    currency = str(invoice.get("currency") or "").upper()
    paid = invoice.get("amount_paid") if invoice.get("status") == "paid" else invoice.get("amount_due")
    return ProviderInvoice(
        provider_invoice_id=str(invoice["id"]),
        status=str(invoice.get("status")),
        amount_minor=from_stripe(int(paid or 0), currency) if currency in EXPONENTS else int(paid or 0),
        currency=currency,
        provider_subscription_id=details.get("subscription"),
        subscription_id=metadata.get("subscription_id"),
        product_id=metadata.get("product_id"),
        period_start=bounds.get("start"),
        period_end=bounds.get("end"),
        provider_payment_id=_payment_intent(invoice),
        hosted_url=invoice.get("hosted_invoice_url"),
        billing_reason=invoice.get("billing_reason"),
    )


def what_it_moves(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    if event_type.startswith(SUBSCRIPTION_EVENT_PREFIX) and obj.get("object") == "subscription":
        return {"subscription": subscription_from_object(obj)}
    if event_type.startswith(INVOICE_EVENT_PREFIX) and obj.get("object") == "invoice":
        found = invoice_from_object(obj)
        return {"invoice": found} if found.provider_subscription_id else {}
    return {}


def _payment_intent(invoice: dict[str, Any]) -> str | None:
    payments = ((invoice.get("payments") or {}).get("data")) or []
    for payment in payments:
        intent = (payment.get("payment") or {}).get("payment_intent")
        if payment.get("status") == "paid" and intent:
            return intent if isinstance(intent, str) else intent.get("id")
    return None


def _first(listed: list[Any]) -> dict[str, Any]:
    return listed[0] if listed and isinstance(listed[0], dict) else {}


def price_params(plan: PlanPrice, product: str) -> dict[str, Any]:
    return {
        "product": product,
        "currency": plan.currency.lower(),
        "unit_amount": to_stripe(plan.amount_minor, plan.currency),
        "recurring": {"interval": plan.interval, "interval_count": plan.interval_count},
        "lookup_key": plan.product_id,
        "transfer_lookup_key": True,
        "nickname": plan.name[:250],
        "metadata": {"product_id": plan.product_id},
    }


def price_matches(price: dict[str, Any], plan: PlanPrice) -> bool:
    recurring = price.get("recurring") or {}
    return (
        bool(price.get("active"))
        and price.get("currency") == plan.currency.lower()
        and price.get("unit_amount") == to_stripe(plan.amount_minor, plan.currency)
        and (recurring.get("interval"), recurring.get("interval_count")) == (plan.interval, plan.interval_count)
    )


def product_id_at_provider(plan: PlanPrice) -> str:
    return f"paywarden_{plan.product_id}"


def subscription_params(request: SubscriptionRequest, price_id: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "customer": request.provider_customer_id,
        "items": [{"price": price_id}],
        "metadata": _metadata(request.subscription_id, request.plan.product_id, request.tenant_id,
                              request.customer_id),
        "expand": ["latest_invoice.payments"],
    }  # fmt: skip
    if request.payment_method:
        params["default_payment_method"] = request.payment_method
        params["payment_behavior"] = "allow_incomplete"
    else:
        params["payment_behavior"] = "default_incomplete"
    if request.trial_days:
        params["trial_period_days"] = request.trial_days
    return params


def _metadata(subscription_id: str, product_id: str, tenant_id: str, customer_id: str) -> dict[str, str]:
    return {"subscription_id": subscription_id, "product_id": product_id, "tenant_id": tenant_id,
            "customer_id": customer_id[:400]}  # fmt: skip
