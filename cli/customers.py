"""`paywarden customers link | list | show`: the provider customer behind each of ours, and what they have."""

from __future__ import annotations

import argparse
import os

from cli.common import with_services
from server import customers
from server.config import Settings
from server.customers import CustomerView
from server.providers import check_provider_config
from server.tenancy import DEFAULT_TENANT, local_caller


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("customers", help="customers: link one to the provider, list, show")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    link = actions.add_parser("link", help="link a customer to an existing provider customer (cus_…)")
    link.add_argument("customer_id")
    link.add_argument("provider_customer_id", help="the provider's customer id, e.g. cus_…")
    link.add_argument("--tenant", default=DEFAULT_TENANT)
    link.add_argument("--force", action="store_true", help="relink a customer already linked to another one")
    link.add_argument("--by", default=os.environ.get("USER") or "operator", help="who links (audited)")
    link.set_defaults(command=run_link)
    listing = actions.add_parser(
        "list", help="customers linked to a provider customer (a saved card, a subscription, customers link)"
    )
    listing.add_argument("--tenant", help="only this tenant's")
    listing.set_defaults(command=run_list)
    show = actions.add_parser("show", help="a customer's saved cards, access, credits and latest payments")
    show.add_argument("customer_id")
    show.add_argument("--tenant", default=DEFAULT_TENANT)
    show.set_defaults(command=run_show)


def run_link(settings: Settings, args: argparse.Namespace) -> int:
    check_provider_config(settings, receives_webhooks=False)
    result = with_services(
        settings,
        lambda services: customers.link(
            services, args.tenant, args.customer_id, args.provider_customer_id, force=args.force, operator=args.by
        ),
    )
    was = f" (was {result.previous_provider_customer_id})" if result.previous_provider_customer_id else ""
    print(f"{args.customer_id} of tenant {args.tenant!r} is linked to {args.provider_customer_id}{was}")
    print(f"{result.cards_imported} saved card(s) imported from the provider")
    _print_view(result.customer)
    return 0


def run_list(settings: Settings, args: argparse.Namespace) -> int:
    found = with_services(settings, lambda services: customers.listing(services, args.tenant))
    for customer in found:
        since = f"{customer.created_at:%Y-%m-%d}"
        print(f"{customer.tenant_id} {customer.customer_id} {customer.provider_customer_id} since {since}")
    print(f"{len(found)} customer(s) linked to a provider customer")
    return 0


def run_show(settings: Settings, args: argparse.Namespace) -> int:
    view = with_services(
        settings, lambda services: customers.details(services, local_caller(args.tenant), args.customer_id)
    )
    _print_view(view)
    return 0


def _print_view(view: CustomerView) -> None:
    print(f"customer {view.customer_id}: provider customer {view.provider_customer_id or '(none yet)'}")
    print("saved cards:" if view.payment_methods else "saved cards: none")
    for card in view.payment_methods:
        default = "  (default)" if card.is_default else ""
        expiry = f"{card.exp_month:02d}/{card.exp_year}"
        print(f"  {card.payment_method_id} {card.brand} ending {card.last4}, expires {expiry}{default}")
    print("access:" if view.entitlements else "access: none")
    for period in view.entitlements:
        print(f"  {period.feature} until {period.expires_at:%Y-%m-%d %H:%M} UTC (payment {period.payment_id})")
    for balance in view.credits:
        print(f"  credits {balance.feature}: {balance.remaining} remaining of {balance.granted} granted")
    print("latest payments:" if view.latest_payments else "latest payments: none")
    for payment in view.latest_payments:
        print(f"  {payment.payment_id} {payment.amount_display} {payment.status} {payment.created_at:%Y-%m-%d %H:%M}")
