"""The operator's spend limits and the approval rules, decided from what the database says was spent.

Pure functions: the caller reads the customer's recent charges under the customer lock and
asks these whether a new charge may go ahead, needs a person, or is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from db.payments import NewPayment
from db.spend import EarlierCharge, WindowCharge
from server.config import Settings
from server.errors import SpendLimitExceeded
from server.money import format_amount
from server.tenancy import Caller

DAY = timedelta(hours=24)


def check_limits(new: NewPayment, settings: Settings, last_day: list[WindowCharge]) -> None:
    """Refuse (SpendLimitExceeded, saying which limit, what is spent and when it frees up) or return."""
    allowed = settings.allowed_currency_set
    if allowed is not None and new.currency not in allowed:
        raise SpendLimitExceeded(
            f"Refused: {new.currency} is not an allowed currency here (allowed: {', '.join(sorted(allowed))})."
        )
    limit = settings.max_charge_minor
    if limit is not None and new.amount_minor > limit:
        raise SpendLimitExceeded(
            f"Refused: {_money(new.amount_minor, new)} is over the per-charge limit of {_money(limit, new)}."
        )
    if settings.daily_limit_minor is not None:
        _check_daily(new, settings.daily_limit_minor, last_day)


def check_key_budget(new: NewPayment, budget_minor: int, currency: str, key_last_day: list[WindowCharge]) -> None:
    """The API key's own rolling-24-hour budget, in its one currency, on top of the per-customer limits."""
    if new.currency != currency:
        raise SpendLimitExceeded(f"Refused: this API key's budget is in {currency}; it cannot charge {new.currency}.")
    _check_window(new, budget_minor, key_last_day, "this API key", "24-hour budget")


def _check_daily(new: NewPayment, limit: int, last_day: list[WindowCharge]) -> None:
    _check_window(new, limit, last_day, f"customer {new.customer_id!r}", "daily limit")


def _check_window(new: NewPayment, limit: int, last_day: list[WindowCharge], whose: str, which: str) -> None:
    spent = sum(charge.amount_minor for charge in last_day)
    if spent + new.amount_minor <= limit:
        return
    if new.amount_minor > limit:
        frees = f"It can never fit: it is larger than the whole {which}."
    else:
        frees = (
            f"Enough of the window frees up at {_frees_at(new.amount_minor, limit, last_day):%Y-%m-%d %H:%M:%S} UTC."
        )
    raise SpendLimitExceeded(
        f"Refused: charging {_money(new.amount_minor, new)} would take {whose} over the "
        f"{which} of {_money(limit, new)} (already charged in the last 24 hours: {_money(spent, new)}). {frees}"
    )


def _frees_at(amount: int, limit: int, last_day: list[WindowCharge]) -> datetime:
    """The first moment at which the charges still inside the rolling window leave room for `amount`."""
    remaining = sum(charge.amount_minor for charge in last_day)
    for charge in last_day:
        remaining -= charge.amount_minor
        if remaining + amount <= limit:
            return charge.charged_at + DAY
    raise AssertionError("unreachable: amount <= limit always fits an empty window")


@dataclass(frozen=True)
class ApprovalNeed:
    reasons: list[str]
    """Why a person must approve this charge; empty when nobody needs to."""
    operator_only: str | None = None
    """Why only an operator may approve it (the MCP client's answer does not count); None: the person may,
    through the client."""

    @property
    def by_client(self) -> bool:
        """Whether asking the person through the MCP client can settle it."""
        return bool(self.reasons) and self.operator_only is None


def approval_need(new: NewPayment, settings: Settings, earlier: EarlierCharge | None, caller: Caller) -> ApprovalNeed:
    """Whether this charge needs an approval, and whose."""
    reasons = _approval_reasons(new, settings, earlier)
    operator_above = settings.operator_approval_above_minor
    if operator_above is not None and new.amount_minor > operator_above:
        limit = _money(operator_above, new)
        only = f"charges above {limit} are approved by an operator only"
        return ApprovalNeed(reasons or [f"it is above {limit}"], operator_only=only)
    if reasons and caller.approval == "operator":
        return ApprovalNeed(reasons, operator_only="this API key's charges are approved by an operator only")
    return ApprovalNeed(reasons)


def _approval_reasons(new: NewPayment, settings: Settings, earlier: EarlierCharge | None) -> list[str]:
    reasons = []
    if new.amount_minor > settings.approval_threshold_minor:
        threshold = _money(settings.approval_threshold_minor, new)
        reasons.append(f"it is above the approval threshold of {threshold}")
    if earlier is not None:
        reasons.append(
            f"the same charge was already made at {earlier.created_at:%Y-%m-%d %H:%M:%S} UTC "
            f"as {earlier.payment_id} ({earlier.status})"
        )
    return reasons


def check_held_count(new: NewPayment, settings: Settings, already_held: int) -> None:
    """A burst of charges waiting for approval for one customer is refused beyond the configured most."""
    if already_held >= settings.max_held_per_customer:
        raise SpendLimitExceeded(
            f"Refused: customer {new.customer_id!r} already has {already_held} charges waiting for approval "
            f"(PAYWARDEN_MAX_HELD_PER_CUSTOMER is {settings.max_held_per_customer}). Wait until an operator has "
            "decided them."
        )


def _money(amount: int, new: NewPayment) -> str:
    return format_amount(amount, new.currency)
