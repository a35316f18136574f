"""`paywarden up | mcp | migrate | keys | tenants | reconcile | webhooks | approve | reject`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
import time
from types import FrameType
from urllib.parse import parse_qs, urlsplit

import asyncpg
import uvicorn.server as uvicorn_server
from pydantic import ValidationError

from db.pool import CONNECTION_ERRORS
from server import logs
from server.catalog import CatalogError
from server.config import Settings
from server.embedded import resolve_database_url
from server.errors import PaywardenError
from server.providers import ProviderConfigError, check_provider_config, is_live

logger = logging.getLogger("paywarden")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logs.configure("text")
    try:
        settings = _settings(args)
        logs.configure(settings.log_format)
        return args.command(settings, args)
    except CONNECTION_ERRORS as error:
        where = _database_location(settings.database_url if "settings" in locals() else None)
        print(
            f"paywarden: cannot reach the database {where} ({type(error).__name__}). "
            "Check DATABASE_URL, or unset it to use the embedded PostgreSQL.",
            file=sys.stderr,
        )
    except (CatalogError, ProviderConfigError, ValidationError) as error:
        print(f"paywarden: configuration problem: {error}", file=sys.stderr)
    except PaywardenError as error:
        print(f"paywarden: {error.message}", file=sys.stderr)
        return 1
    return 2


def _database_problem(error: BaseException) -> str:
    if isinstance(error, asyncpg.InvalidCatalogNameError):
        return "that database does not exist"
    if isinstance(error, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError):
        return "the server refused the user or password"
    if isinstance(error, ConnectionRefusedError):
        return "nothing is listening there"
    if isinstance(error, TimeoutError):
        return "it did not answer in time"
    return f"{type(error).__name__}"


def _database_location(url: str | None) -> str:
    """Host, port and database of a URL, never its password."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or parse_qs(parts.query).get("host", ["local socket"])[0]
    return f"at {host}:{parts.port or 5432}{parts.path}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paywarden", description="Payments for LLM agents, safely.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    up = commands.add_parser("up", help="run everything: MCP over HTTP, webhooks, the sandbox provider")
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="port to listen on (default 8000)")
    up.set_defaults(command=run_up)
    mcp = commands.add_parser("mcp", help="run the MCP server over stdio (what mcp.json launches)")
    mcp.set_defaults(command=run_mcp)
    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(command=run_migrate)
    reconcile = commands.add_parser("reconcile", help="bring unfinished payments to the provider's truth, once")
    reconcile.set_defaults(command=run_reconcile)
    webhooks = commands.add_parser("webhooks", help="look at the webhook inbox; replay an event")
    webhook_commands = webhooks.add_subparsers(required=True, metavar="ACTION")
    listing = webhook_commands.add_parser("list", help="the newest stored events")
    listing.add_argument("--failed", action="store_true", help="only events whose handling failed")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(command=run_webhooks_list)
    replay = webhook_commands.add_parser("replay", help="apply a stored event again (failed ones change)")
    replay.add_argument("event_id")
    replay.set_defaults(command=run_webhooks_replay)
    _key_commands(commands)
    _tenant_commands(commands)
    for name, run, verb in (("approve", run_approve, "approve"), ("reject", run_reject, "reject")):
        decide = commands.add_parser(name, help=f"{verb} a payment waiting in requires_approval")
        decide.add_argument("payment_id")
        decide.add_argument("--by", default=os.environ.get("USER") or "operator", help="who decides (audited)")
        if name == "reject":
            decide.add_argument("--reason", help="why (audited, and shown to the agent)")
        decide.set_defaults(command=run)
    return parser


def _key_commands(commands: argparse._SubParsersAction) -> None:
    keys = commands.add_parser("keys", help="API keys for the HTTP MCP endpoint: create, list, revoke")
    key_commands = keys.add_subparsers(required=True, metavar="ACTION")
    create = key_commands.add_parser("create", help="create a key (and its tenant, if new); printed once")
    create.add_argument("--tenant", required=True, help="the tenant (merchant account) whose customers it serves")
    create.add_argument("--name", required=True, help="what the key is for, e.g. the agent's name")
    create.add_argument("--scopes", default="read,charge", help="comma-separated: read, charge, refund")
    create.add_argument("--budget-minor", type=int, help="most it may charge per rolling 24 hours, in minor units")
    create.add_argument("--budget-currency", help="the budget's currency (ISO 4217); the key charges only in it")
    create.add_argument(
        "--rate-per-minute", type=int, help="HTTP requests per minute (default PAYWARDEN_RATE_LIMIT_PER_MINUTE, 600)"
    )
    create.set_defaults(command=run_keys_create)
    listing = key_commands.add_parser("list", help="every key, shown by its first characters")
    listing.add_argument("--tenant", help="only this tenant's keys")
    listing.set_defaults(command=run_keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke a key at once (key_… id from `keys list`)")
    revoke.add_argument("key_id")
    revoke.set_defaults(command=run_keys_revoke)


def _tenant_commands(commands: argparse._SubParsersAction) -> None:
    tenants = commands.add_parser("tenants", help="tenants (merchant accounts): create, list, webhook endpoint")
    tenant_commands = tenants.add_subparsers(required=True, metavar="ACTION")
    create = tenant_commands.add_parser("create", help="create a tenant (keys create also does, when needed)")
    create.add_argument("tenant")
    create.add_argument("--name", help="a readable name (default: the id)")
    create.set_defaults(command=run_tenants_create)
    tenant_commands.add_parser("list", help="every tenant, its active keys, its webhook endpoint").set_defaults(
        command=run_tenants_list
    )
    secret = tenant_commands.add_parser(
        "webhook-secret", help="set the secret the tenant's own endpoint /webhooks/stripe/<tenant> verifies"
    )
    secret.add_argument("tenant")
    secret.add_argument("secret", nargs="?", help="whsec_… from the provider (comma-separated to rotate)")
    secret.add_argument("--remove", action="store_true", help="close the tenant's own endpoint")
    secret.set_defaults(command=run_tenants_webhook_secret)


def run_tenants_create(settings: Settings, args: argparse.Namespace) -> int:
    from db import api_keys as stored
    from server.api_keys import check_tenant_id

    check_tenant_id(args.tenant)
    created = asyncio.run(
        _with_connection(
            _with_database(settings), lambda conn: stored.ensure_tenant(conn, args.tenant, args.name or args.tenant)
        )
    )
    print(f"created tenant {args.tenant!r}" if created else f"tenant {args.tenant!r} already exists")
    return 0


def run_tenants_list(settings: Settings, args: argparse.Namespace) -> int:
    from db import api_keys as stored

    rows = asyncio.run(_with_connection(_with_database(settings), stored.tenants))
    for row in rows:
        endpoint = f"/webhooks/stripe/{row['id']}" if row["has_webhook_endpoint"] else "-"
        print(f"{row['id']} name={row['name']!r} active_keys={row['active_keys']} own_webhook_endpoint={endpoint}")
    print(f"{len(rows)} tenant(s)")
    return 0


def run_tenants_webhook_secret(settings: Settings, args: argparse.Namespace) -> int:
    from db import api_keys as stored

    if bool(args.secret) == args.remove:
        raise PaywardenError("Give the secret, or --remove.")
    if args.secret and not all(part.strip().startswith("whsec_") for part in args.secret.split(",")):
        raise PaywardenError("A Stripe webhook secret starts with whsec_.")
    secret = None if args.remove else args.secret
    found = asyncio.run(
        _with_connection(_with_database(settings), lambda conn: stored.set_webhook_secret(conn, args.tenant, secret))
    )
    if not found:
        raise PaywardenError(f"No tenant {args.tenant!r}; `paywarden tenants list` shows them.")
    where = f"{settings.base_url}/webhooks/stripe/{args.tenant}"
    print(f"{where} is closed" if args.remove else f"{where} now verifies with the given secret")
    return 0


def run_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    from server import api_keys
    from server.money import format_amount

    scopes = api_keys.parse_scopes(args.scopes)
    if args.budget_minor is not None and args.budget_minor <= 0:
        raise PaywardenError("--budget-minor must be a positive number of minor units.")
    rate = args.rate_per_minute or settings.rate_limit_per_minute
    if rate <= 0:
        raise PaywardenError("--rate-per-minute must be positive.")
    issued, tenant_created = asyncio.run(
        _with_connection(
            _with_database(settings),
            lambda conn: api_keys.issue(
                conn,
                tenant_id=args.tenant,
                name=args.name,
                scopes=scopes,
                rate_per_minute=rate,
                budget_minor=args.budget_minor,
                budget_currency=args.budget_currency,
            ),
        )
    )
    if tenant_created:
        print(f"created tenant {args.tenant!r}")
    key = issued.key
    budget = ""
    if key.budget_minor is not None and key.budget_currency is not None:
        budget = f", budget {format_amount(key.budget_minor, key.budget_currency)} per 24 hours"
    print(
        f"{key.id} for tenant {key.tenant_id!r} ({key.name}): scopes {','.join(key.scopes)}{budget}, "
        f"{key.rate_per_minute} requests/minute"
    )
    print(f"\n  {issued.secret}\n")
    print("This is the only time the key is shown; paywarden keeps a hash of it (and its first characters).")
    print('Agents send it as "Authorization: Bearer <key>" to /mcp.')
    return 0


def run_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    from db import api_keys

    keys = asyncio.run(_with_connection(_with_database(settings), lambda conn: api_keys.listing(conn, args.tenant)))
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        budget = f" budget={key.budget_minor}{key.budget_currency}/24h" if key.budget_minor else ""
        print(
            f"{key.id} tenant={key.tenant_id} name={key.name!r} key={key.shown_prefix} "
            f"scopes={','.join(key.scopes)}{budget} rate={key.rate_per_minute}/min "
            f"created={key.created_at:%Y-%m-%d %H:%M} {state}"
        )
    print(f"{len(keys)} key(s)")
    return 0


def run_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    from db import api_keys

    key = asyncio.run(_with_connection(_with_database(settings), lambda conn: api_keys.revoke(conn, args.key_id)))
    if key is None:
        raise PaywardenError(f"No key {args.key_id!r}; `paywarden keys list` shows the ids.")
    print(f"{key.id} ({key.name}, tenant {key.tenant_id!r}) revoked at {key.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
    return 0


async def _with_connection(settings: Settings, action):
    from db.migrate import migrate_url
    from db.pool import create_pool, transaction

    await migrate_url(settings.database_url or "")
    pool = await create_pool(settings.database_url or "", min_size=1, max_size=1)
    try:
        async with transaction(pool) as conn:
            return await action(conn)
    finally:
        await pool.close()


def _settings(args: argparse.Namespace) -> Settings:
    given = {name: getattr(args, name, None) for name in ("host", "port")}
    overrides = {name: value for name, value in given.items() if value is not None}
    return Settings(**overrides)


def _with_database(settings: Settings) -> Settings:
    """The settings with a database URL: DATABASE_URL, or the embedded PostgreSQL started now."""
    if settings.database_url and not settings.database_url.startswith(("postgresql://", "postgres://")):
        raise ProviderConfigError("DATABASE_URL must be a postgresql:// URL.")
    url = resolve_database_url(settings.database_url, settings.embedded_pgdata)
    return settings.model_copy(update={"database_url": url})


def run_migrate(settings: Settings, args: argparse.Namespace) -> int:
    settings = _with_database(settings)
    from db.migrate import migrate_url

    applied = asyncio.run(migrate_url(settings.database_url or ""))
    print(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m.version:04d}_{m.name}" for m in applied))
    return 0


def run_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    settings = _with_database(settings)
    from server.reconciler import reconcile_once

    check_provider_config(settings, receives_webhooks=False)
    report = asyncio.run(_with_services(settings, reconcile_once))
    print(report.summary())
    for problem in report.errors:
        print(f"  error: {problem}")
    for payment_id in report.needs_operator:
        print(f"  {payment_id}: recorded over 23 hours ago and never confirmed by the provider; check it there")
    return 1 if report.errors else 0


def run_webhooks_list(settings: Settings, args: argparse.Namespace) -> int:
    from db import webhook_events
    from db.pool import transaction

    settings = _with_database(settings)

    async def listing(services):
        async with transaction(services.pool) as conn:
            return await webhook_events.listing(conn, failed_only=args.failed, limit=args.limit)

    rows = asyncio.run(_with_services(settings, listing))
    for row in rows:
        problem = f"  error: {row['last_error']}" if row["last_error"] else ""
        print(
            f"{row['received_at']:%Y-%m-%d %H:%M:%S} {row['event_id']} {row['event_type']} {row['outcome']} "
            f"attempts={row['attempts']} payment={row['payment_id'] or '-'} tenant={row['tenant_id'] or '-'} "
            f"via={row['source']}{problem}"
        )
    print(f"{len(rows)} event(s)")
    return 0


def run_webhooks_replay(settings: Settings, args: argparse.Namespace) -> int:
    from server import inbox

    settings = _with_database(settings)
    result = asyncio.run(_with_services(settings, lambda s: inbox.retry(s.pool, s.provider, args.event_id)))
    logger.info("replay of %s: %s", args.event_id, result.outcome, extra={"event_id": args.event_id})
    print(f"{args.event_id}: {result.outcome}" + (f" ({result.note})" if result.note else ""))
    return 1 if result.outcome in ("failed", "unknown") else 0


def run_approve(settings: Settings, args: argparse.Namespace) -> int:
    settings = _with_database(settings)
    from server import charges

    check_provider_config(settings, receives_webhooks=False)
    payment = asyncio.run(_with_services(settings, lambda s: charges.approve(s, args.payment_id, args.by)))
    print(f"{payment.id} approved by {args.by}: now {payment.status}")
    return 0


def run_reject(settings: Settings, args: argparse.Namespace) -> int:
    settings = _with_database(settings)
    from server import charges

    payment = asyncio.run(_with_services(settings, lambda s: charges.reject(s, args.payment_id, args.by, args.reason)))
    print(f"{payment.id} rejected by {args.by}: now {payment.status}")
    return 0


async def _with_services(settings: Settings, action):
    from db.migrate import migrate_url
    from server.services import open_services

    await migrate_url(settings.database_url or "")
    async with open_services(settings) as services:
        return await action(services)


def run_mcp(settings: Settings, args: argparse.Namespace) -> int:
    settings = _with_database(settings)
    from db.migrate import migrate_url
    from server.app import build_server

    check_provider_config(settings, receives_webhooks=False)
    asyncio.run(migrate_url(settings.database_url or ""))
    from db import api_keys

    if not asyncio.run(_with_connection(settings, lambda conn: api_keys.tenant_exists(conn, settings.stdio_tenant))):
        raise PaywardenError(
            f"PAYWARDEN_STDIO_TENANT is {settings.stdio_tenant!r}, which is not a tenant; create it with "
            f"`paywarden tenants create {settings.stdio_tenant}` or unset it to act as 'default'."
        )
    build_server(settings).run("stdio")
    return 0


def run_up(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from db.migrate import migrate_url
    from server.app import build_server
    from webapp.app import build_webapp

    check_provider_config(settings, receives_webhooks=True)
    try:
        sock = _listen(settings.host, settings.port)
    except OSError as error:
        print(
            f"paywarden: cannot listen on {settings.host}:{settings.port}: {error.strerror}. "
            "Stop what uses it or pass --port.",
            file=sys.stderr,
        )
        return 2
    settings = _with_database(settings)
    asyncio.run(migrate_url(settings.database_url or ""))
    first_key = asyncio.run(_with_connection(settings, lambda conn: _first_key(conn, settings.rate_limit_per_minute)))
    app = build_webapp(settings, mcp=build_server(settings, background_reconciler=True, serve_http=True))
    print(banner(settings, first_key), file=sys.stderr, flush=True)
    # uvicorn handles Ctrl-C and SIGTERM itself (a clean shutdown of the app and its lifespan), then
    # re-raises the signal to whatever handler was there before. A quiet one lets this function return,
    # so the embedded PostgreSQL is stopped at exit instead of the process dying mid-cleanup.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, _already_stopping)
    PatientServer(uvicorn.Config(app, log_level="info", lifespan="on")).run(sockets=[sock])
    return 0


class PatientServer(uvicorn_server.Server):
    """A terminal's Ctrl-C reaches this process twice (from the terminal, and forwarded by `uv run`).
    Only a Ctrl-C pressed again later forces an immediate exit; one press shuts down cleanly."""

    _first_stop: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self._first_stop is not None and now - self._first_stop < 1.0:
            return
        self._first_stop = self._first_stop or now
        super().handle_exit(sig, frame)


def _already_stopping(signum: int, frame: object) -> None:
    """After uvicorn's own shutdown: nothing left to do but return."""


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets that say they are TCP, and with Nagle on
    # every response on a kept-alive connection waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def mode(settings: Settings) -> str:
    if settings.provider == "sandbox":
        return "sandbox (local, no real money)"
    return "LIVE — real money moves" if is_live(settings) else "test (Stripe test key)"


async def _first_key(conn: asyncpg.Connection, rate_per_minute: int) -> str | None:
    """On the very first start, a key for the default tenant, so the HTTP endpoint can be used at once."""
    from db import api_keys as stored_keys
    from server import api_keys
    from server.tenancy import DEFAULT_TENANT, SCOPES

    await conn.execute("SELECT pg_advisory_xact_lock(7461226503)")  # two first starts make one key
    if await stored_keys.any_key(conn):
        return None
    issued, _ = await api_keys.issue(
        conn, tenant_id=DEFAULT_TENANT, name="first key", scopes=list(SCOPES), rate_per_minute=rate_per_minute
    )
    return issued.secret


def banner(settings: Settings, first_key: str | None = None) -> str:
    base = settings.base_url
    shown = first_key or "<a key from: paywarden keys create --tenant default --name my-agent>"
    entry = {"type": "http", "url": f"{base}/mcp", "headers": {"Authorization": f"Bearer {shown}"}}
    snippet = {"mcpServers": {"paywarden-http": entry}}
    key_lines = (
        [
            "First start: an API key for tenant 'default' (scopes read, charge, refund) was created.",
            "It is shown only now; paywarden keeps a hash. Create more with `paywarden keys create`.",
            f"  {first_key}",
            "",
        ]
        if first_key
        else []
    )
    return "\n".join(
        [
            "",
            f"paywarden is up — provider: {settings.provider}, mode: {mode(settings)}",
            f"  MCP (streamable HTTP): {base}/mcp  (Authorization: Bearer <API key>)",
            f"  Stripe webhooks:       {base}/webhooks/stripe  (a tenant's own: {base}/webhooks/stripe/<tenant>)",
            f"  Standard Webhooks:     {base}/webhooks/standard",
            *([f"  Sandbox provider:      {base}/sandbox"] if settings.provider == "sandbox" else []),
            f"  Health:                {base}/healthz  (ready: {base}/readyz, metrics: {base}/metrics)",
            "",
            *key_lines,
            "Connect an MCP client with this mcp.json entry:",
            json.dumps(snippet, indent=2),
            "",
            "Press Ctrl-C to stop.",
            "",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
