"""`paywarden operators create | list | disable | reset`: the people who sign in to the console at /console."""

from __future__ import annotations

import argparse
import os

from cli.common import with_services
from server import operators
from server.config import Settings
from server.operators import ROLES, Acting, IssuedPassword


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("operators", help="console operators: create, list, disable, reset")
    actions = group.add_subparsers(required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create an operator; prints a one-time password once")
    create.add_argument("--name", required=True, help="what they sign in with (lowercase letters, digits, . _ -)")
    create.add_argument("--role", required=True, choices=ROLES, help="viewer reads; support also acts; admin manages")
    create.add_argument("--tenant", help="they see only this tenant (default: every tenant, a platform operator)")
    create.set_defaults(command=run_create)
    listing = actions.add_parser("list", help="every operator, their role, tenant and state")
    listing.add_argument("--tenant", help="only this tenant's operators")
    listing.set_defaults(command=run_list)
    disable = actions.add_parser("disable", help="disable an operator at once (their sessions end)")
    disable.add_argument("name")
    disable.set_defaults(command=run_disable)
    reset = actions.add_parser("reset", help="a new one-time password (enables a disabled operator again)")
    reset.add_argument("name")
    reset.set_defaults(command=run_reset)


def _me() -> Acting:
    return Acting(os.environ.get("USER") or "operator", "cli")


def run_create(settings: Settings, args: argparse.Namespace) -> int:
    issued = with_services(
        settings,
        lambda services: operators.create(services, name=args.name, role=args.role, tenant_id=args.tenant, by=_me()),
    )
    sees = f"tenant {args.tenant!r}" if args.tenant else "every tenant"
    print(f"created operator {issued.operator.name!r}: {issued.operator.role}, sees {sees}")
    _show_password(settings, issued)
    return 0


def _show_password(settings: Settings, issued: IssuedPassword) -> None:
    print(f"\n  one-time password: {issued.password}\n")
    print("This is the only time it is shown; paywarden keeps an argon2 hash of it.")
    print(
        f"Sign in at {settings.base_url}/console as {issued.operator.name!r} with it; the console then asks "
        "for a password of their own."
    )


def run_list(settings: Settings, args: argparse.Namespace) -> int:
    found = with_services(settings, lambda services: operators.listing(services, args.tenant))
    for operator in found:
        state = f"disabled {operator.disabled_at:%Y-%m-%d %H:%M}" if operator.disabled_at else "active"
        if not operator.disabled_at and operator.password_is_temporary:
            state += " (one-time password not used yet)"
        print(
            f"{operator.name} role={operator.role} tenant={operator.tenant_id or '*'} "
            f"created={operator.created_at:%Y-%m-%d %H:%M} {state}"
        )
    print(f"{len(found)} operator(s)")
    return 0


def run_disable(settings: Settings, args: argparse.Namespace) -> int:
    operator = with_services(settings, lambda services: operators.disable(services, args.name, by=_me()))
    assert operator.disabled_at is not None
    print(f"operator {operator.name!r} disabled at {operator.disabled_at:%Y-%m-%d %H:%M:%S} UTC; their sessions ended")
    return 0


def run_reset(settings: Settings, args: argparse.Namespace) -> int:
    issued = with_services(settings, lambda services: operators.reset(services, args.name, by=_me()))
    print(f"operator {issued.operator.name!r}: new one-time password; the old password and every session ended")
    _show_password(settings, issued)
    return 0
