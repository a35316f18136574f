"""Operators: created with a one-time password, hashed with argon2id, rate-limited at sign-in, sessions that end
when they should; the `paywarden operators` commands; the first admin of `paywarden up`."""

from __future__ import annotations

import asyncio
import re

import asyncpg
import pytest
from argon2 import PasswordHasher

from cli.running import banner
from server import operator_sessions, operators
from server.errors import SignInRefused, SignInThrottled
from tests.helpers import (
    OWN_PASSWORD,
    SIGNIN_INPUT,
    console_client,
    free_socket,
    local_http,
    new_operator,
    paywarden_command,
    quiet_settings,
    running_app,
)

ONE_TIME = re.compile(r"one-time password: (\S+)")


async def test_the_operator_commands(app, database_url: str, db: asyncpg.Connection) -> None:
    code, created = await paywarden_command(database_url, "operators", "create", "--name", "dana", "--role", "support")
    assert code == 0 and "created operator 'dana': support, sees every tenant" in created
    password = ONE_TIME.search(created).group(1)
    assert "only time it is shown" in created and "/console as 'dana' with it" in created
    stored = await db.fetchval("SELECT password_hash FROM operators WHERE name = 'dana'")
    assert stored.startswith("$argon2id$") and password not in stored

    code, refused = await paywarden_command(database_url, "operators", "create", "--name", "dana", "--role", "admin")
    assert code == 1 and "An operator named 'dana' already exists" in refused
    code, refused = await paywarden_command(database_url, "operators", "create", "--name", "x", "--role", "boss")
    assert code == 2 and "invalid choice: 'boss'" in refused
    code, refused = await paywarden_command(database_url, "operators", "create", "--name", "e", "--role", "viewer",
                                            "--tenant", "nowhere")  # fmt: skip
    assert code == 1 and "No tenant 'nowhere'" in refused

    async with console_client(app, "dana", password):
        pass
    code, listed = await paywarden_command(database_url, "operators", "list")
    assert "dana role=support tenant=* created=" in listed and "active" in listed and "1 operator(s)" in listed

    code, reset = await paywarden_command(database_url, "operators", "reset", "dana")
    new_password = ONE_TIME.search(reset).group(1)
    assert code == 0 and new_password != password
    with pytest.raises(SignInRefused):  # the password she chose no longer works
        await operator_sessions.sign_in(app.services, "dana", OWN_PASSWORD, "127.0.0.1")
    code, disabled = await paywarden_command(database_url, "operators", "disable", "dana")
    assert code == 0 and "operator 'dana' disabled at" in disabled
    with pytest.raises(SignInRefused):
        await operator_sessions.sign_in(app.services, "dana", new_password, "127.0.0.1")
    actions = await db.fetch("SELECT action, via, subject FROM operator_audit ORDER BY id")
    assert [(row["action"], row["via"]) for row in actions if row["subject"] == "dana"] == [
        ("operator.create", "cli"), ("sign_in", "console"), ("password.change", "console"),
        ("operator.reset", "cli"), ("operator.disable", "cli"),
    ]  # fmt: skip


async def test_passwords_are_hashed_with_argon2_defaults(services, monkeypatch) -> None:
    cheap = operators.HASHER  # what the suite uses (conftest.py)
    monkeypatch.setattr(operators, "HASHER", PasswordHasher())  # what paywarden uses
    issued = await operators.create(services, name="real", role="viewer", by=operators.Acting("t", "cli"))
    monkeypatch.setattr(operators, "HASHER", cheap)
    async with services.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT password_hash FROM operators WHERE name = 'real'")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # RFC 9106's second recommendation
    assert await operators.password_matches(stored, issued.password)
    started = await operator_sessions.sign_in(services, "real", issued.password, "10.0.0.1")
    assert started.signed_in.must_choose_password  # and signing in rehashed it with the (cheap) test parameters
    async with services.pool.acquire() as conn:
        assert (await conn.fetchval("SELECT password_hash FROM operators WHERE name = 'real'")).startswith(
            "$argon2id$v=19$m=8,t=1,p=1$"
        )


async def test_sign_in_is_rate_limited_per_name_and_per_address(services) -> None:
    password = await new_operator(services, "ada", "viewer")
    limit = services.settings.signin_failures_per_name  # 5
    results = await asyncio.gather(
        *(operator_sessions.sign_in(services, "ada", f"guess {n}", "10.0.0.1") for n in range(12)),
        return_exceptions=True,
    )  # concurrent guesses cannot slip past the limit
    assert sum(isinstance(r, SignInRefused) for r in results) == limit
    assert sum(isinstance(r, SignInThrottled) for r in results) == 12 - limit
    with pytest.raises(SignInThrottled, match="try again in 15 minute"):
        await operator_sessions.sign_in(services, "ada", password, "10.0.0.2")  # even the right password, for now

    other = await new_operator(services, "bob", "viewer")
    for n in range(services.settings.signin_failures_per_address - limit):  # the address has 5 failures already
        with pytest.raises(SignInRefused):
            await operator_sessions.sign_in(services, f"nobody{n}", "guess", "10.0.0.1")
    with pytest.raises(SignInThrottled):
        await operator_sessions.sign_in(services, "bob", other, "10.0.0.1")  # this address is done for now
    assert (await operator_sessions.sign_in(services, "bob", other, "10.0.0.3")).signed_in.name == "bob"


async def test_a_right_password_is_not_counted_against_the_limit(services) -> None:
    password = await new_operator(services, "ada", "viewer")
    for _ in range(services.settings.signin_failures_per_name + 2):
        await operator_sessions.sign_in(services, "ada", password, "10.0.0.1")


async def test_sessions_end_idle_after_the_maximum_at_sign_out_and_on_disable(app, db: asyncpg.Connection) -> None:
    password = await new_operator(app.services, "ada", "admin")
    async with console_client(app, "ada", password) as console:
        assert (await console.get("/console")).url.path == "/console"
        await db.execute("UPDATE operator_sessions SET last_seen_at = now() - interval '31 minutes'")
        assert (await console.get("/console/payments")).url.path == "/console/sign-in"  # idle too long
    async with console_client(app, "ada", OWN_PASSWORD, choose=None) as console:
        await db.execute("UPDATE operator_sessions SET created_at = now() - interval '13 hours'")
        assert (await console.get("/console")).url.path == "/console/sign-in"  # however busy, 12 hours at most
    async with console_client(app, "ada", OWN_PASSWORD, choose=None) as console:
        live = "SELECT count(*) FROM operator_sessions WHERE created_at > now() - interval '1 hour'"
        assert await db.fetchval(live) == 1
        await console.post("/console/sign-out")
        assert (await console.get("/console")).url.path == "/console/sign-in"
        assert await db.fetchval(live) == 0
    bob = await new_operator(app.services, "bob", "viewer")
    async with console_client(app, "bob", bob) as console:
        await operators.disable(app.services, "bob", by=operators.Acting("ada", "console"))
        assert (await console.get("/console")).url.path == "/console/sign-in"


async def test_a_forged_or_stale_cookie_is_no_session(app) -> None:
    password = await new_operator(app.services, "ada", "viewer")
    async with console_client(app, "ada", password) as console:
        cookie = console.http.cookies["paywarden_session"]
        token = cookie.split(".")[0]
        console.http.cookies.clear()
        console.http.cookies.set("paywarden_session", token + ".forged", domain="127.0.0.1", path="/console")
        assert (await console.get("/console")).url.path == "/console/sign-in"


async def test_the_cookies_are_secure_behind_https(app) -> None:
    settings = app.settings.model_copy(update={"public_url": "https://pay.example.com"})
    with free_socket() as sock:
        async with running_app(settings, sock) as services, local_http() as http:
            password = await new_operator(services, "ada", "viewer")
            base = f"http://127.0.0.1:{sock.getsockname()[1]}"
            form = await http.get(f"{base}/console/sign-in")
            token = SIGNIN_INPUT.search(form.text).group(1)
            fields = {"name": "ada", "password": password, "signin_token": token}
            # A browser sends a Secure cookie only over https; this test speaks http to the process behind the proxy.
            answer = await http.post(
                f"{base}/console/sign-in", data=fields, headers={"Cookie": f"paywarden_signin={token}"}
            )
    cookies = answer.headers.get_list("set-cookie") + form.headers.get_list("set-cookie")
    for name in ("paywarden_signin", "paywarden_session"):
        cookie = next(header for header in cookies if header.startswith(f"{name}="))
        assert all(flag in cookie for flag in ("Secure", "HttpOnly", "SameSite=strict", "Path=/console")), cookie


async def test_the_sign_in_form_needs_its_own_token(app) -> None:
    await new_operator(app.services, "ada", "viewer")
    async with local_http(base_url=app.base_url) as http:
        answer = await http.post("/console/sign-in", data={"name": "ada", "password": "x", "signin_token": "made-up"})
    assert answer.status_code == 403 and "sign-in form expired" in answer.text


async def test_the_first_start_creates_one_admin(database_url: str) -> None:
    from server.services import open_services

    async with open_services(quiet_settings(database_url)) as services:
        first = await asyncio.gather(*(operators.create_first_admin(services) for _ in range(5)))
        made = [issued for issued in first if issued is not None]
        assert len(made) == 1 and made[0].operator.name == "admin" and made[0].operator.role == "admin"
        assert made[0].operator.tenant_id is None and await operators.create_first_admin(services) is None
        shown = banner(services.settings, "pwk_x", made[0].password)
    assert f"Operator console:      {services.settings.base_url}/console" in shown
    assert made[0].password in shown and "console operator 'admin'" in shown


@pytest.mark.parametrize(
    "statement", ["UPDATE operator_audit SET operator = 'someone else'", "DELETE FROM operator_audit"]
)
async def test_the_operator_audit_is_append_only(
    services, db: asyncpg.Connection, database_url: str, statement
) -> None:
    await new_operator(services, "ada", "viewer")
    server = await asyncpg.connect(database_url)  # the role paywarden serves as
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await server.execute(statement)
    finally:
        await server.close()
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await db.execute(statement)  # even the owner: the trigger refuses
    assert await db.fetchval("SELECT operator FROM operator_audit") == "tests"
