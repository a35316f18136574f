"""`paywarden keys create | list | revoke`: API keys for agents (/mcp) and backends."""

from __future__ import annotations

import argparse

from cli.common import with_services
from server import api_keys
from server.config import Settings


def register(commands: argparse._SubParsersAction) -> None:
    keys = commands.add_parser("keys", help="API keys for the HTTP MCP endpoint: create, list, revoke")
    actions = keys.add_subparsers(required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key (and its tenant, if new); printed once")
    create.add_argument("--tenant", required=True, help="the tenant (merchant account) whose customers it serves")
    create.add_argument("--name", required=True, help="what the key is for, e.g. the agent's name")
    create.add_argument("--scopes", default="read,charge", help="comma-separated: read, charge, refund, webhooks")
    create.add_argument("--budget-minor", type=int, help="most it may charge per rolling 24 hours, in minor units")
    create.add_argument("--budget-currency", help="the budget's currency (ISO 4217); the key charges only in it")
    create.add_argument(
        "--rate-per-minute", type=int, help="HTTP requests per minute (default PAYWARDEN_RATE_LIMIT_PER_MINUTE, 600)"
    )
    create.add_argument(
        "--approval",
        default="operator",
        help="who approves its charges that need approval: operator (default; they wait for an operator) "
        "or client (the person, asked through the agent's MCP client — only as trustworthy as that client)",
    )
    create.set_defaults(command=run_create)
    listing = actions.add_parser("list", help="every key, shown by its first characters")
    listing.add_argument("--tenant", help="only this tenant's keys")
    listing.set_defaults(command=run_list)
    revoke = actions.add_parser("revoke", help="revoke a key at once (key_… id from `keys list`)")
    revoke.add_argument("key_id")
    revoke.set_defaults(command=run_revoke)


def run_create(settings: Settings, args: argparse.Namespace) -> int:
    scopes = api_keys.parse_scopes(args.scopes)
    approval = api_keys.parse_approval(args.approval)
    issued = with_services(
        settings,
        lambda services: api_keys.issue(
            services,
            tenant_id=args.tenant,
            name=args.name,
            scopes=scopes,
            rate_per_minute=args.rate_per_minute,
            budget_minor=args.budget_minor,
            budget_currency=args.budget_currency,
            approval=approval,
        ),
    )
    if issued.tenant_created:
        print(f"created tenant {args.tenant!r}")
    key = issued.key
    budget = api_keys.describe_budget(key)
    print(
        f"{key.id} for tenant {key.tenant_id!r} ({key.name}): scopes {','.join(key.scopes)}"
        f"{f', budget {budget}' if budget else ''}, {key.rate_per_minute} requests/minute, "
        f"approvals by {'the person through the MCP client' if key.approval == 'client' else 'an operator'}"
    )
    print(f"\n  {issued.secret}\n")
    print("This is the only time the key is shown; paywarden keeps a hash of it (and its first characters).")
    print('Agents send it as "Authorization: Bearer <key>" to /mcp.')
    return 0


def run_list(settings: Settings, args: argparse.Namespace) -> int:
    keys = with_services(settings, lambda services: api_keys.listing(services, args.tenant))
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        budget = api_keys.describe_budget(key)
        print(
            f"{key.id} tenant={key.tenant_id} name={key.name!r} key={key.shown_prefix} "
            f"scopes={','.join(key.scopes)}{f' budget={budget!r}' if budget else ''} "
            f"rate={key.rate_per_minute}/min approval={key.approval} created={key.created_at:%Y-%m-%d %H:%M} {state}"
        )
    print(f"{len(keys)} key(s)")
    return 0


def run_revoke(settings: Settings, args: argparse.Namespace) -> int:
    key = with_services(settings, lambda services: api_keys.revoke(services, args.key_id))
    assert key.revoked_at is not None
    print(f"{key.id} ({key.name}, tenant {key.tenant_id!r}) revoked at {key.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
    return 0
