"""`paywarden approvals | approve | reject`: what waits for an operator, and their decision."""

from __future__ import annotations

import argparse
import os

from cli.common import with_services
from server import approvals, charges
from server.config import Settings
from server.payments import PaymentStatus
from server.providers import check_provider_config


def register(commands: argparse._SubParsersAction) -> None:
    operator = os.environ.get("USER") or "operator"
    waiting = commands.add_parser("approvals", help="payments waiting in requires_approval, oldest first")
    waiting.add_argument("--tenant", help="only this tenant's")
    waiting.set_defaults(command=run_approvals)
    approve = commands.add_parser("approve", help="approve a payment waiting in requires_approval")
    approve.add_argument("payment_id")
    approve.add_argument("--by", default=operator, help="who decides (audited)")
    approve.set_defaults(command=run_approve)
    reject = commands.add_parser("reject", help="reject a payment waiting in requires_approval")
    reject.add_argument("payment_id")
    reject.add_argument("--by", default=operator, help="who decides (audited)")
    reject.add_argument("--reason", help="why (audited, and shown to the agent)")
    reject.set_defaults(command=run_reject)


def run_approvals(settings: Settings, args: argparse.Namespace) -> int:
    held = with_services(settings, lambda services: approvals.queue(services, args.tenant))
    for waiting in held:
        payment = waiting.payment
        print(
            f"{payment.payment_id} since {waiting.waiting_since:%Y-%m-%d %H:%M:%S} tenant={payment.tenant_id} "
            f"customer={payment.customer_id} {payment.amount_display} {payment.description or '(ad hoc)'!r}"
        )
        for reason in waiting.reasons:
            print(f"    because {reason}")
        if waiting.operator_only:
            print(f"    only an operator may approve it: {waiting.operator_only}")
        print(f"    expires {waiting.expires_at:%Y-%m-%d %H:%M:%S} UTC unless decided")
    print(f"{len(held)} payment(s) waiting; decide with `paywarden approve ID` or `paywarden reject ID`")
    return 0


def run_approve(settings: Settings, args: argparse.Namespace) -> int:
    check_provider_config(settings, receives_webhooks=False)
    payment = with_services(settings, lambda services: charges.approve(services, args.payment_id, args.by))
    print(f"{payment.id} approved by {args.by}: now {payment.status}")
    if payment.status == PaymentStatus.REQUIRES_ACTION and payment.next_action_url:
        print(f"The person must now pay on this page (send them the link): {payment.next_action_url}")
    if payment.status == PaymentStatus.FAILED:
        print(f"The provider refused it: {payment.failure_reason}")
    return 0


def run_reject(settings: Settings, args: argparse.Namespace) -> int:
    payment = with_services(settings, lambda services: charges.reject(services, args.payment_id, args.by, args.reason))
    print(f"{payment.id} rejected by {args.by}: now {payment.status}")
    return 0
