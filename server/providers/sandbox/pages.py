"""The sandbox's hosted pages, as HTML: where a person authenticates a payment, pays in Checkout, or
saves a card. Plain forms, one button each, so that they work without JavaScript."""

from __future__ import annotations

import html
from typing import Any

from fastapi.responses import HTMLResponse

from server.money import format_amount
from server.providers.sandbox import cards
from server.providers.stripe_amounts import from_stripe

NOTE = "<p class=note>paywarden sandbox: no real money moves.</p>"


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}"
        ".amount{font-size:2rem;font-weight:600}button{font-size:1.1rem;padding:.6rem 1.4rem;margin:.3rem 0}"
        ".note{color:#666;font-size:.9rem}.problem{color:#a00}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status)


def button(action: str, label: str, button_id: str) -> str:
    return (
        f"<form method=post action='{html.escape(action)}'>"
        f"<button id={html.escape(button_id)} type=submit>{html.escape(label)}</button></form>"
    )


def money(amount: int, currency: str) -> str:
    upper = currency.upper()
    return format_amount(from_stripe(amount, upper), upper)


def payment_form(intent: dict[str, Any]) -> str:
    """The page for a payment intent that waits for the person (3-D Secure, or an operator-approved charge)."""
    amount = html.escape(money(intent["amount"], intent["currency"]))
    description = html.escape(intent.get("description") or "")
    if intent["status"] != "requires_action":
        return f"<p>{amount} — {description}</p><p>This payment {_settled(intent['status'])}.</p>"
    base = f"/sandbox/pay/{intent['id']}"
    return (
        f"<p class=amount>{amount}</p><p>{description}</p>"
        + button(f"{base}/pay", f"Pay {amount}", "pay")
        + button(f"{base}/decline", "Decline", "decline")
        + NOTE
    )


def checkout_form(session: dict[str, Any], private: dict[str, Any], problem: str | None = None) -> str:
    """A Checkout Session's page: pay (payment mode) or save a card (setup mode)."""
    if session["status"] != "open":
        return f"<p>This checkout {'is complete' if session['status'] == 'complete' else 'has expired'}.</p>"
    shown = f"<p class=problem>{html.escape(problem)}</p>" if problem else ""
    cancel_url = session.get("cancel_url")
    back = f"<p><a id=back href='{html.escape(cancel_url)}'>Back</a></p>" if cancel_url else ""
    base = f"/sandbox/checkout/{session['id']}"
    if session["mode"] == "setup":
        return shown + _save_card_form(base) + back + NOTE
    return shown + _pay_form(base, session, private) + back + NOTE


def _pay_form(base: str, session: dict[str, Any], private: dict[str, Any]) -> str:
    amount = html.escape(money(session["amount_total"], session["currency"]))
    lines = "".join(
        f"<li>{html.escape(line['name'])} × {line['quantity']}</li>" for line in private.get("line_items", [])
    )
    return (
        f"<p class=amount>{amount}</p><ul>{lines}</ul>"
        + button(f"{base}/pay/pm_card_visa", f"Pay {amount}", "pay")
        + button(f"{base}/pay/pm_card_chargeDeclined", "Use a declined card", "declined-card")
    )


def _save_card_form(base: str) -> str:
    choices = "".join(
        button(f"{base}/save/{card}", f"Save {card} ({cards.describe(card)})", card)
        for card in cards.SAVE_ON_HOSTED_PAGE
    )
    return (
        "<p>Save a card for later payments. Choose the sandbox test card to save:</p>"
        f"{choices}<p class=note>pm_card_visa pays; pm_card_authenticationRequired needs you on every payment; "
        "pm_card_chargeCustomerFail is declined whenever it is charged.</p>"
    )


def done(title: str, detail: str) -> HTMLResponse:
    return page(title, f"<p>{html.escape(detail)} You can close this window and return to the conversation.</p>")


def _settled(status: str) -> str:
    return {"succeeded": "has already been paid", "canceled": "was canceled"}.get(status, "is not waiting for payment")
