"""`paywarden tenants create | list | webhook-secret`: merchant accounts and their own webhook endpoint."""

from __future__ import annotations

import argparse

from cli.common import with_services
from server import tenants
from server.config import Settings
from server.errors import InvalidRequest


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("tenants", help="tenants (merchant accounts): create, list, webhook endpoint")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a tenant (keys create also does, when needed)")
    create.add_argument("tenant")
    create.add_argument("--name", help="a readable name (default: the id)")
    create.set_defaults(command=run_create)
    actions.add_parser("list", help="every tenant, its active keys, its webhook endpoint").set_defaults(
        command=run_list
    )
    secret = actions.add_parser(
        "webhook-secret", help="set the secret the tenant's own endpoint /webhooks/stripe/<tenant> verifies"
    )
    secret.add_argument("tenant")
    secret.add_argument("secret", nargs="?", help="whsec_… from the provider (comma-separated to rotate)")
    secret.add_argument("--remove", action="store_true", help="close the tenant's own endpoint")
    secret.set_defaults(command=run_webhook_secret)


def run_create(settings: Settings, args: argparse.Namespace) -> int:
    tenants.check_tenant_id(args.tenant)
    created = with_services(settings, lambda services: tenants.create(services, args.tenant, args.name))
    print(f"created tenant {args.tenant!r}" if created else f"tenant {args.tenant!r} already exists")
    return 0


def run_list(settings: Settings, args: argparse.Namespace) -> int:
    found = with_services(settings, tenants.listing)
    for tenant in found:
        endpoint = f"/webhooks/stripe/{tenant.id}" if tenant.has_webhook_endpoint else "-"
        print(f"{tenant.id} name={tenant.name!r} active_keys={tenant.active_keys} own_webhook_endpoint={endpoint}")
    print(f"{len(found)} tenant(s)")
    return 0


def run_webhook_secret(settings: Settings, args: argparse.Namespace) -> int:
    if bool(args.secret) == args.remove:
        raise InvalidRequest("Give the secret, or --remove.")
    secret = None if args.remove else args.secret
    with_services(settings, lambda services: tenants.set_webhook_secret(services, args.tenant, secret))
    where = f"{settings.base_url}/webhooks/stripe/{args.tenant}"
    print(f"{where} is closed" if args.remove else f"{where} now verifies with the given secret")
    return 0
