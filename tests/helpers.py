"""What the tests share. Test modules import from here (never from each other)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import html
import inspect
import io
import json
import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.process
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import stripe
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ElicitRequestParams, ElicitResult
from openapi_core import Config, OpenAPI
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest, MockResponse
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

import cli
from server import api_keys, tls, webhook_delivery
from server.config import Settings
from server.services import Services, open_services
from server.tenancy import DEFAULT_TENANT, SCOPES, Approver, Scope, local_caller
from tools.server import build_server
from webapp.app import build_webapp

LOCAL = local_caller(DEFAULT_TENANT)
"""The trusted local caller (what stdio and in-process clients act as), for tests below the MCP layer."""
WEBHOOK_SECRET = "whsec_test_secret"  # the settings fixture's STRIPE_WEBHOOK_SECRET


def local_http(**options: Any) -> httpx.AsyncClient:
    """An HTTP client for the test's own servers, sharing the process's TLS context (httpx builds a new one,
    CA bundle and all, for every client otherwise: the suite makes thousands)."""
    return httpx.AsyncClient(verify=tls.client_context(), **options)


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP: no Nagle (see cli/running.py)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def quiet_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for services a test opens itself: its database, a port nobody listens on, no .env."""
    fields: dict[str, Any] = {"database_url": database_url, "port": free_port(), "provider": "sandbox"}
    return Settings(_env_file=None, **{**fields, **overrides})


async def new_key(
    database_url: str,
    tenant_id: str = DEFAULT_TENANT,
    scopes: tuple[Scope, ...] = SCOPES,
    *,
    rate_per_minute: int = 10_000,
    budget_minor: int | None = None,
    budget_currency: str | None = None,
    name: str = "test agent",
    approval: Approver = "operator",
) -> str:
    """An API key (created with its tenant if new), as `paywarden keys create` makes one (by default its
    charges that need approval wait for an operator)."""
    async with open_services(quiet_settings(database_url)) as services:
        issued = await api_keys.issue(
            services,
            tenant_id=tenant_id,
            name=name,
            scopes=list(scopes),
            rate_per_minute=rate_per_minute,
            budget_minor=budget_minor,
            budget_currency=budget_currency,
            approval=approval,
        )
    return issued.secret


async def key_id(db: asyncpg.Connection, secret: str) -> str:
    """The id (key_…) of the API key whose secret this is."""
    digest = hashlib.sha256(secret.encode()).digest()
    return await db.fetchval("SELECT id FROM api_keys WHERE secret_sha256 = $1", digest)


@asynccontextmanager
async def http_client(url: str, key: str | None, **options: Any) -> AsyncIterator[Client]:
    """An MCP client over streamable HTTP that sends `Authorization: Bearer <key>` (none if key is None)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        local_http(headers=headers, timeout=httpx.Timeout(30, read=300), follow_redirects=True) as http,
        Client(streamable_http_client(url, http_client=http), **options) as client,
    ):
        yield client


async def approve_everything(context: Any, params: ElicitRequestParams) -> ElicitResult:
    """An elicitation callback: the person says yes to every approval question."""
    return ElicitResult(action="accept", content={"approve": True})


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured result."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail; the message the agent reads."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return " ".join(part.text for part in result.content if hasattr(part, "text"))


@asynccontextmanager
async def local_mcp(settings: Settings, **options: Any) -> AsyncIterator[Client]:
    """An in-process MCP client (the trusted local caller of the default tenant) of a server over services
    opened with these settings; the provider they talk to is the sandbox of the app at settings.base_url."""
    async with (
        open_services(settings) as services,
        Client(build_server(services, local_tenant=DEFAULT_TENANT), **options) as client,
    ):
        yield client


@dataclass(frozen=True)
class RunningApp:
    services: Services

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def base_url(self) -> str:
        return self.settings.base_url


@asynccontextmanager
async def running_app(settings: Settings, sock: socket.socket) -> AsyncIterator[Services]:
    """What `paywarden up` runs, in this process on the given socket: its services, the HTTP app over
    them with the MCP server at /mcp (keys required), the sandbox provider and the webhook delivery."""
    async with open_services(settings, serve_sandbox=True) as services, api_keys.cached_while_listening(services):
        async with (
            serving(build_webapp(services, mcp=build_server(services)), sock),
            webhook_delivery.running_in_background(services),
        ):
            yield services


class PromptServer(uvicorn.Server):
    """uvicorn as the tests run it: it notices it should stop within 5 ms, not 100 ms, and does not wait
    a fixed 100 ms for connections that are already gone (the suite starts and stops hundreds of them)."""

    async def main_loop(self) -> None:
        await self.on_tick(0)
        while not self.should_exit:  # noqa: ASYNC110 - uvicorn's own flag, set by signal handlers and by serving()
            await asyncio.sleep(0.005)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        await asyncio.sleep(0.005)  # let closed connections report themselves gone
        await asyncio.wait_for(self._wait_tasks_to_complete(), timeout=10)
        await self.lifespan.shutdown()


@asynccontextmanager
async def serving(asgi_app: Any, sock: socket.socket) -> AsyncIterator[uvicorn.Server]:
    """Serve an ASGI app with uvicorn on an already-bound socket, in this event loop, until the block ends."""
    server = PromptServer(uvicorn.Config(asgi_app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.002)
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def eventually(check: Callable[[], Awaitable[Any] | Any], within: float = 10.0) -> Any:
    """Poll until `check` (a function, or a coroutine function) returns something truthy (e.g. a webhook has
    arrived)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value {value!r}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def database_refusing_connections(owner_database_url: str) -> AsyncIterator[None]:
    """While the block runs, the test database refuses new connections and has dropped the open ones."""
    name = urlsplit(owner_database_url).path.lstrip("/")
    admin = await asyncpg.connect(with_database(owner_database_url, "postgres"))
    try:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.close()


# --- Webhooks, signed as the provider signs them --------------------------------------------------


def signed(body: str, secret: str = WEBHOOK_SECRET, at: int | None = None) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(body, secret, at or int(time.time()))
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


def intent_event(event_type: str, payment: dict, *, event_id: str, amount: int | None = None, **intent: Any) -> str:
    """A Stripe payment_intent event about a payment as create_charge returned it."""
    obj = {
        "id": payment["provider_payment_id"],
        "object": "payment_intent",
        "amount": payment["amount_minor"] if amount is None else amount,
        "currency": payment["currency"].lower(),
        "metadata": {"payment_id": payment["payment_id"]},
        "status": {"payment_intent.succeeded": "succeeded", "payment_intent.processing": "processing"}.get(
            event_type, "requires_payment_method"
        ),
        **intent,
    }
    return json.dumps({"id": event_id, "object": "event", "type": event_type, "data": {"object": obj}})


async def post_webhook(app: Any, body: str | bytes, headers: dict[str, str]) -> httpx.Response:
    async with local_http(base_url=app.base_url) as http:
        return await http.post("/webhooks/stripe", content=body, headers=headers)


async def click(page_url: str, button: str) -> str:
    """Open the sandbox's hosted page as a browser would and submit the form of the named button."""
    async with local_http(follow_redirects=True) as browser:
        page = await browser.get(page_url)
        assert page.status_code == 200 and button in page.text
        forms = re.findall(r"<form method=post action='([^']+)'><button[^>]*>([^<]+)</button>", page.text)
        action = next(action for action, label in forms if label.startswith(button))
        result = await browser.post(httpx.URL(page_url).join(action))
        assert result.status_code == 200, result.text
        return result.text


def sandbox_client(app: Any) -> stripe.StripeClient:
    """The official Stripe SDK pointed at the running app's sandbox, with its key: the provider's side, as a
    merchant's dashboard or script would act on it."""
    return stripe.StripeClient(
        app.services.sandbox.api_key,
        base_addresses={"api": f"{app.base_url}/sandbox"},
        http_client=stripe.HTTPXClient(),
    )


async def sent_to_sandbox(db: asyncpg.Connection, method: str, path_prefix: str) -> list[dict[str, Any]]:
    """The API requests the sandbox answered (its request log), oldest first: what a client really sent,
    with Stripe's form encoding unfolded (`metadata[k]=v` → {"metadata": {"k": "v"}}, lists by index)."""
    rows = await db.fetch(
        "SELECT path, params, idempotency_key, status_code FROM sandbox.requests"
        " WHERE method = $1 AND path LIKE $2 || '%' ORDER BY id",
        method,
        path_prefix,
    )
    return [{**dict(row), "params": json.loads(row["params"])} for row in rows]


# --- Credits --------------------------------------------------------------------------------------


async def assert_ledger_matches(
    db: asyncpg.Connection, customer: str, feature: str, tenant_id: str = DEFAULT_TENANT
) -> None:
    """The account, the sum of its ledger and the sum of its lots agree, and nothing is overdrawn."""
    account_key = "tenant_id = $1 AND customer_id = $2 AND feature = $3"
    account = await db.fetchrow(
        f"SELECT granted, used, reserved FROM credit_accounts WHERE {account_key}", tenant_id, customer, feature
    )
    ledger = await db.fetchrow(
        "SELECT sum(granted_delta) AS granted, sum(used_delta) AS used, sum(reserved_delta) AS reserved"
        f" FROM credit_ledger WHERE {account_key}",
        tenant_id,
        customer,
        feature,
    )
    lots = await db.fetchrow(
        "SELECT sum(quantity - written_off) AS granted, sum(used) AS used, sum(held) AS reserved"
        f" FROM credit_lots WHERE {account_key}",
        tenant_id,
        customer,
        feature,
    )
    assert dict(account) == dict(ledger) == dict(lots)
    assert account["granted"] - account["used"] - account["reserved"] >= 0
    await assert_next_expiry_not_late(db, tenant_id, customer, feature)


async def assert_next_expiry_not_late(db: asyncpg.Connection, tenant_id: str, customer: str, feature: str) -> None:
    """The account's next_expiry_at is never later than the expiry of one of its held reservations or open
    lots (migration 0120): a consume that trusts it never skips time acting."""
    row = await db.fetchrow(
        "SELECT next_expiry_at, credit_next_expiry($1, $2, $3) AS due FROM credit_accounts"
        " WHERE tenant_id = $1 AND customer_id = $2 AND feature = $3",
        tenant_id,
        customer,
        feature,
    )
    assert row["due"] is None or (row["next_expiry_at"] is not None and row["next_expiry_at"] <= row["due"]), dict(row)


# --- The command line -----------------------------------------------------------------------------

_command_lock = threading.Lock()


async def paywarden_command(database_url: str, *args: str, **settings: str) -> tuple[int, str]:
    """Run one `paywarden …` command in this process (its `main`, in a thread of its own); its exit code
    and everything it printed. Settings are given as keyword arguments (`port="8123"`); the command
    never reads a .env file, and talks to no port but the one given (or a closed one)."""
    env = {"DATABASE_URL": database_url, "PAYWARDEN_ENV_FILE": "", "PAYWARDEN_PORT": str(free_port())}
    env.update({f"PAYWARDEN_{name.upper()}": value for name, value in settings.items()})
    return await asyncio.to_thread(_run_command, list(args), env)


def _run_command(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    output = io.StringIO()
    with (
        _command_lock,
        _environment(env),
        _logging_restored(),
        contextlib.redirect_stdout(output),
        contextlib.redirect_stderr(output),
    ):
        try:
            code = cli.main(args)
        except SystemExit as exit_:  # argparse refusing the arguments
            code = exit_.code if isinstance(exit_.code, int) else 2
    return code, output.getvalue()


@contextlib.contextmanager
def _logging_restored() -> Iterator[None]:
    """The command configures logging for a terminal; the test's own logging (pytest's capture) comes back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- Real processes (for what needs one: signals, crashes, several servers) ------------------------


def process_environment(database_url: str, **settings: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "PAYWARDEN_ENV_FILE": ""}
    env.update({f"PAYWARDEN_{name.upper()}": value for name, value in settings.items()})
    return env


@asynccontextmanager
async def paywarden_ups(database_url: str, count: int, **settings: str) -> AsyncIterator[list[str]]:
    """Several `paywarden up` processes on one database, started at once; their base URLs."""
    async with contextlib.AsyncExitStack() as stack:
        starting = [stack.enter_async_context(paywarden_up(database_url, **settings)) for _ in range(count)]
        yield list(await asyncio.gather(*starting))


@asynccontextmanager
async def paywarden_up(database_url: str, **settings: str) -> AsyncIterator[str]:
    """`paywarden up` as its own process on a free port; yields its base URL, stops it afterwards (SIGINT)."""
    port = free_port()
    env = process_environment(database_url, port=str(port), **settings)
    with tempfile.NamedTemporaryFile() as said:  # what it printed, to say why if it never becomes ready
        process = _forked_processes().Process(target=_serve_up, args=(env, said.name), daemon=True)
        process.start()
        base = f"http://127.0.0.1:{port}"
        try:
            await eventually(lambda: _healthy(base, process, said), within=30)
            yield base
        finally:
            await _stop(process)


@functools.cache
def _forked_processes() -> multiprocessing.context.ForkServerContext:
    """`paywarden up` processes are forked from a server process that imported paywarden once (the standard
    library's forkserver), not started from scratch: each is a process of its own, with its own memory, signals
    and death, without the second and a half of imports a new interpreter spends (the suite starts dozens).
    `paywarden up` as a user starts it, from a new interpreter, is tested in test_transports.py."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["cli"])
    return context


def _serve_up(env: dict[str, str], said: str) -> None:
    """In the forked process: the environment the command would have, its output where the test reads it."""
    os.environ.clear()
    os.environ.update(env)
    with open(os.devnull, "wb") as nothing, open(said, "wb") as errors:
        os.dup2(nothing.fileno(), 1)
        os.dup2(errors.fileno(), 2)
    sys.exit(cli.main(["up"]))


async def _stop(process: multiprocessing.process.BaseProcess) -> None:
    if process.exitcode is None:
        # A process that crashed on purpose may be gone, reaped by the forkserver, before its exit code is read.
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGINT)
        await asyncio.to_thread(process.join, 15)
        if process.exitcode is None:
            process.kill()
            await asyncio.to_thread(process.join)


async def _healthy(base: str, process: multiprocessing.process.BaseProcess, said: Any) -> bool:
    if process.exitcode is not None:
        said.seek(0)
        raise AssertionError(f"paywarden up exited with {process.exitcode}:\n{said.read().decode()[-3000:]}")
    try:
        async with local_http() as http:
            return (await http.get(f"{base}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


# --- The HTTP API (/v1) ---------------------------------------------------------------------------


@asynccontextmanager
async def api_client(base_url: str, key: str | None) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of /v1 that sends `Authorization: Bearer <key>` and checks every /v1 response it gets
    against the server's own /openapi.json (status, headers, body schema), so no test can see an answer
    the document does not describe."""
    async with local_http(base_url=base_url) as plain:
        spec = _spec((await plain.get("/openapi.json")).text)

    async def documented(response: httpx.Response) -> None:
        await response.aread()
        if response.request.url.path.startswith("/v1/"):
            assert_documented(spec, response)

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with local_http(
        base_url=base_url, headers=headers, timeout=30, event_hooks={"response": [documented]}
    ) as http:
        yield http


@functools.lru_cache(maxsize=4)
def _spec(document: str) -> OpenAPI:
    """The document, checked and read once per text (checking an OpenAPI document is costly, and every app in
    this process serves the same one)."""
    problems_are_json = Config(extra_media_type_deserializers={"application/problem+json": json.loads})
    return OpenAPI.from_dict(json.loads(document), config=problems_are_json)


def assert_documented(spec: OpenAPI, response: httpx.Response) -> None:
    """The response is one the OpenAPI document declares for its operation, or a problem+json 404/405 for a
    path or method the document does not have."""
    request = response.request
    checked = MockRequest(
        host_url=f"{request.url.scheme}://{request.url.netloc.decode()}",
        method=request.method,
        path=request.url.path,
        args=dict(request.url.params),
        headers=dict(request.headers),
        data=request.content,
        content_type=request.headers.get("content-type", ""),
    )
    answer = MockResponse(
        response.content,
        response.status_code,
        headers=dict(response.headers),
        content_type=response.headers.get("content-type", ""),
    )
    try:
        spec.validate_response(checked, answer)
    except (PathNotFound, OperationNotFound):
        assert response.status_code in (404, 405), response.text
        assert response.headers["content-type"] == "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str, param: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem with this status and code (and param); its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["code"] == code, problem
    assert problem["type"] == f"urn:paywarden:problem:{code}" and problem["title"] and problem["detail"]
    if param is not None:
        assert problem["param"] == param, problem
    return problem


# --- A merchant's webhook receiver -----------------------------------------------------------------


class Receiver:
    """A merchant's endpoint for paywarden's webhooks: checks each one with the standardwebhooks library
    against every secret it knows (a delivery must verify with each), answers 503 while `up` is False
    (302 to `redirect_to` while that is set), and keeps what arrived."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.up = True
        self.redirect_to: str | None = None
        self.url = ""
        self.events: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.refused = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {name.decode(): value.decode() for name, value in scope["headers"]}
        if self.redirect_to:
            location = [(b"location", self.redirect_to.encode())]
            await send({"type": "http.response.start", "status": 302, "headers": location})
            await send({"type": "http.response.body", "body": b""})
            return
        status = 503 if not self.up else self._take(body, headers)
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok" if status == 200 else b"down for maintenance"})

    def _take(self, body: bytes, headers: dict[str, str]) -> int:
        try:
            events = [Webhook(secret).verify(body, headers) for secret in self.secrets]
        except WebhookVerificationError:
            self.refused += 1
            return 400
        self.events.append(events[0])
        self.headers.append(headers)
        return 200

    def ids(self) -> Counter[str]:
        return Counter(event["id"] for event in self.events)


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[Receiver]:
    """A Receiver listening on 127.0.0.1 (at `receiver.url`) until the block ends."""
    receiver = Receiver()
    sock = free_socket()
    receiver.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"
    try:
        async with serving(receiver, sock):
            yield receiver
    finally:
        sock.close()


# --- The operator console -------------------------------------------------------------------------

OWN_PASSWORD = "correct horse battery staple"
"""The password test operators choose at their first sign-in."""
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
SIGNIN_INPUT = re.compile(r'name="signin_token" value="([^"]+)"')
CHROMIUM = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    # Chromium resolves Google's hosts at start despite the flags above; this stops every DNS lookup of its own
    # (IP literals are mapped too, hence the EXCLUDEs: tests use 127.0.0.1).
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
]


async def new_operator(services: Services, name: str, role: str = "support", tenant_id: str | None = None) -> str:
    """An operator, as `paywarden operators create` makes one; their one-time password."""
    from server import operators

    issued = await operators.create(
        services, name=name, role=role, tenant_id=tenant_id, by=operators.Acting("tests", "cli")
    )
    return issued.password


class ConsoleClient:
    """A browser-like HTTP client of the console, signed in (cookies kept), that knows its CSRF token."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.csrf = ""

    async def get(self, path: str, **options: Any) -> httpx.Response:
        answer = await self.http.get(path, **options)
        found = CSRF_INPUT.search(answer.text)
        self.csrf = found.group(1) if found else self.csrf
        return answer

    async def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **options: Any):
        fields = {**({"csrf_token": self.csrf} if csrf else {}), **(data or {})}
        answer = await self.http.post(path, data=fields, **options)
        found = CSRF_INPUT.search(answer.text)
        self.csrf = found.group(1) if found else self.csrf
        return answer


@asynccontextmanager
async def console_client(
    app: Any, name: str, password: str, *, choose: str | None = OWN_PASSWORD
) -> AsyncIterator[ConsoleClient]:
    """Signed in to the console as `name` (choosing `choose` as their own password when they sign in with a
    one-time one), following redirects as a browser does."""
    async with local_http(base_url=app.base_url, follow_redirects=True) as http:
        client = ConsoleClient(http)
        answer = await sign_in_over_http(client, name, password)
        if answer.url.path == "/console/password" and choose:
            answer = await client.post("/console/password", {"current": password, "new": choose, "repeat": choose})
        assert answer.status_code == 200 and answer.url.path == "/console", (answer.url, answer.text[:500])
        yield client


async def sign_in_over_http(client: ConsoleClient, name: str, password: str) -> httpx.Response:
    form = await client.http.get("/console/sign-in")
    token = SIGNIN_INPUT.search(form.text)
    assert token is not None, form.text[:500]
    fields = {"name": name, "password": password, "signin_token": token.group(1)}
    return await client.post("/console/sign-in", fields, csrf=False)


async def sign_in(page: Any, base_url: str, name: str, password: str, choose: str | None = OWN_PASSWORD) -> None:
    """Sign the page's browser in to the console (through the sign-in and password forms, as plain form posts with
    the browser's own cookies: test_sign_in clicks through them), then open the overview."""
    form = await page.request.get(f"{base_url}/console/sign-in")
    token = SIGNIN_INPUT.search(await form.text())
    assert token is not None
    fields = {"name": name, "password": password, "signin_token": token.group(1)}
    answer = await page.request.post(f"{base_url}/console/sign-in", form=fields)
    if choose and "/console/password" in answer.url:
        csrf = CSRF_INPUT.search(await answer.text())
        assert csrf is not None
        chosen = {"csrf_token": csrf.group(1), "current": password, "new": choose, "repeat": choose}
        answer = await page.request.post(f"{base_url}/console/password", form=chosen)
    assert answer.url == f"{base_url}/console", answer.url
    await page.goto(f"{base_url}/console")


def visible_text(page: str) -> str:
    """What a person reads on an HTML page: no tags, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


async def customer_at_the_provider(app, *cards: str) -> str:
    """A customer the merchant made at the provider before paywarden, with cards saved (the last is newest)."""
    provider = sandbox_client(app)
    customer = await provider.v1.customers.create_async({"email": "merchant-made@example.com"})
    for card in cards:
        await provider.v1.payment_methods.attach_async(card, {"customer": customer.id})
    return customer.id


async def save_card(client: Client, customer_id: str, card: str = "pm_card_visa", key: str = "setup-1") -> dict:
    """The person saves `card` on the page setup_payment_method gives; the customer as get_customer shows it
    once the provider's events have arrived."""
    setup = await call(client, "setup_payment_method", customer_id=customer_id, idempotency_key=key)
    assert setup["status"] == "requires_action" and "/sandbox/checkout/cs_test_" in setup["setup_url"]
    await click(setup["setup_url"], f"Save {card}")
    return await eventually(lambda: _saved(client, customer_id, setup["setup_id"], card))


async def _saved(client: Client, customer_id: str, setup_id: str, card: str) -> dict | None:
    view = await call(client, "get_customer", customer_id=customer_id)
    last4 = {"pm_card_visa": "4242", "pm_card_authenticationRequired": "3184", "pm_card_chargeCustomerFail": "0341"}
    default = [method for method in view["payment_methods"] if method["is_default"]]
    return view if default and default[0]["last4"] == last4[card] else None


async def all_events_delivered(owner_database_url: str) -> None:
    """No webhook is still being handled (and asking the sandbox for its subscription) while the app shuts down."""
    conn = await asyncpg.connect(owner_database_url)
    try:
        undelivered = "SELECT NOT EXISTS (SELECT 1 FROM sandbox.deliveries WHERE delivered_at IS NULL)"
        await eventually(lambda: conn.fetchval(undelivered), within=15)
    finally:
        await conn.close()


async def advance(app: Any, days: int = 0, seconds: int = 0) -> dict:
    """Move the sandbox's clock forward through its HTTP API (what `paywarden sandbox advance` does)."""
    async with local_http(base_url=f"{app.base_url}/sandbox") as http:
        answer = await http.post(
            "/v1/test_helpers/sandbox_clock/advance",
            data={"days": str(days)} if days else {"seconds": str(seconds)},
            headers={"Authorization": f"Bearer {app.services.sandbox.api_key}"},
        )
    assert answer.status_code == 200, answer.text
    return answer.json()


async def to_period_end(app: Any, period_end: str) -> None:
    """Advance the sandbox's clock a minute past `period_end`."""
    async with local_http(base_url=f"{app.base_url}/sandbox") as http:
        clock = await http.get(
            "/v1/test_helpers/sandbox_clock", headers={"Authorization": f"Bearer {app.services.sandbox.api_key}"}
        )
    left = datetime.fromisoformat(period_end).timestamp() - clock.json()["frozen_time"]
    await advance(app, seconds=max(int(left) + 60, 1))


async def provider_subscription(app: Any, provider_id: str) -> dict:
    async with local_http(base_url=f"{app.base_url}/sandbox") as http:
        answer = await http.get(
            f"/v1/subscriptions/{provider_id}", headers={"Authorization": f"Bearer {app.services.sandbox.api_key}"}
        )
    return answer.json()


async def settled(client: Client, subscription_id: str, *, renewed_from: str | None = None, **expected: Any) -> dict:
    """The subscription once the provider's events have brought it to `expected` (and `invoices` paid ones),
    and, given `renewed_from` (a period's end), into a later period (a renewal's invoice may be applied before
    the update that moves the period)."""
    invoices = expected.pop("invoices", None)

    async def check() -> dict | None:
        view = await call(client, "get_subscription", subscription_id=subscription_id)
        paid = [p for p in view["invoices"] if p["status"] in ("succeeded", "refunded", "partially_refunded")]
        matches = all(view[name] == value for name, value in expected.items())
        renewed = renewed_from is None or view["current_period_end"] != renewed_from
        return view if matches and renewed and (invoices is None or len(paid) == invoices) else None

    return await eventually(check)
