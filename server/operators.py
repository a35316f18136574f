"""Operators: the people who sign in to the console. Created with a one-time password shown once (argon2id
hashes only are stored), listed, disabled, reset; their roles say what they may do, their tenant what they see.

    viewer   reads everything of its tenant(s)
    support  also approves and rejects held charges, refunds, replays webhook events (in and out), runs
             the reconciler, links customers to existing provider customers
    admin    also manages API keys, the tenants' webhook endpoints, operators and (platform admins) tenants

An operator with a tenant sees only that tenant; one without is a platform operator and sees every tenant.
Every change here is written to the operator audit log, naming who made it.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from db import api_keys as tenant_rows
from db import operators
from db.operators import Operator
from db.pool import connection, transaction
from server.errors import InvalidRequest, NotFound, NotPermitted
from server.services import Services
from server.tenancy import operator_caller

Role = Literal["viewer", "support", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "support", "admin")
Permission = Literal[
    "read",
    "decide",
    "refund",
    "replay",
    "reconcile",
    "link_customers",
    "manage_keys",
    "manage_endpoints",
    "manage_operators",
]
SUPPORT: frozenset[Permission] = frozenset({"read", "decide", "refund", "replay", "reconcile", "link_customers"})
GRANTS: dict[str, frozenset[Permission]] = {
    "viewer": frozenset({"read"}),
    "support": SUPPORT,
    "admin": SUPPORT | {"manage_keys", "manage_endpoints", "manage_operators"},
}
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
FIRST_ADMIN = "admin"
FIRST_ADMIN_LOCK = 7_461_226_504
"""Two first starts of `paywarden up` on one database make one first admin."""
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
HASHER = PasswordHasher()  # argon2id, RFC 9106's low-memory profile (argon2-cffi's defaults)


@dataclass(frozen=True)
class Acting:
    """Who takes an operator action, as the operator audit names them: a signed-in operator (`console`) or
    the person at the terminal (`cli`)."""

    name: str
    via: Literal["console", "cli"]


@dataclass(frozen=True, kw_only=True)
class OperatorView:
    """An operator as others see them (never the password hash)."""

    name: str
    role: Role
    tenant_id: str | None
    created_at: datetime
    disabled_at: datetime | None
    password_is_temporary: bool

    @classmethod
    def of(cls, operator: Operator) -> OperatorView:
        return cls(
            name=operator.name,
            role=operator.role,  # type: ignore[arg-type]  # the column's CHECK keeps it to ROLES
            tenant_id=operator.tenant_id,
            created_at=operator.created_at,
            disabled_at=operator.disabled_at,
            password_is_temporary=operator.password_is_temporary,
        )


@dataclass(frozen=True)
class IssuedPassword:
    operator: OperatorView
    password: str
    """The one-time password: shown once, replaced by the operator's own at their first sign-in."""


@dataclass(frozen=True, kw_only=True)
class SignedIn:
    """An operator with a live console session."""

    name: str
    role: Role
    tenant_id: str | None
    """The one tenant this operator may see; None for a platform operator."""
    viewing_tenant: str | None
    """The tenant a platform operator chose in the switcher; None for all tenants."""
    csrf_token: str
    must_choose_password: bool
    """Signed in with a one-time password: nothing but choosing a new one is allowed."""

    @property
    def is_platform(self) -> bool:
        return self.tenant_id is None

    @property
    def scope(self) -> str | None:
        """The tenant lists are limited to (None: every tenant)."""
        return self.tenant_id or self.viewing_tenant

    def can(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise NotPermitted(f"Operator {self.name!r} has the {self.role} role, which may not do this; ask an admin.")

    def may_see(self, tenant_id: str | None) -> bool:
        return self.tenant_id is None or self.tenant_id == tenant_id

    def caller_for(self, tenant_id: str):
        """The Caller a service sees when this operator acts on a payment of `tenant_id`."""
        return operator_caller(tenant_id, self.name, frozenset({"read", "refund"}))

    @property
    def acting(self) -> Acting:
        return Acting(self.name, "console")


def check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise InvalidRequest(
            "An operator name is 1-63 lowercase letters, digits, '.', '-' or '_', starting with a letter or digit."
        )


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise InvalidRequest(f"A role is one of {', '.join(ROLES)}; got {role!r}.")
    return role  # type: ignore[return-value]


def one_time_password() -> str:
    return secrets.token_urlsafe(15)  # 120 random bits, 20 characters


async def hash_password(password: str) -> str:
    """argon2id takes tens of milliseconds of CPU on purpose: done off the event loop."""
    return await asyncio.to_thread(HASHER.hash, password)


async def password_matches(password_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return HASHER.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


def needs_rehash(password_hash: str) -> bool:
    """Made with other parameters than today's (argon2-cffi raised its defaults, say)."""
    try:
        return HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@cache
def hash_of_nobody() -> str:
    """Checked against when the name is unknown, so a wrong name takes as long as a wrong password."""
    return HASHER.hash(secrets.token_urlsafe(16))


async def create(
    services: Services, *, name: str, role: str, tenant_id: str | None = None, by: Acting
) -> IssuedPassword:
    """A new operator with a one-time password (the caller shows it once)."""
    check_name(name)
    check_role(role)
    password = one_time_password()
    hashed = await hash_password(password)
    async with transaction(services.pool) as conn:
        if tenant_id is not None and not await tenant_rows.tenant_exists(conn, tenant_id):
            raise InvalidRequest(f"No tenant {tenant_id!r}; `paywarden tenants list` shows them.")
        operator = await operators.insert(
            conn, operator_id="op_" + secrets.token_hex(8), name=name, role=role, tenant_id=tenant_id,
            password_hash=hashed,
        )  # fmt: skip
        detail = f"role {role}, " + (f"tenant {tenant_id}" if tenant_id else "every tenant")
        await audit(conn, by, "operator.create", name, tenant_id, detail)
    return IssuedPassword(OperatorView.of(operator), password)


async def create_first_admin(services: Services) -> IssuedPassword | None:
    """On the very first start (no operator yet), a platform admin named `admin`, so the console can be used."""
    async with transaction(services.pool) as conn:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", FIRST_ADMIN_LOCK)
        if await operators.any_operator(conn):
            return None
        password = one_time_password()
        operator = await operators.insert(
            conn, operator_id="op_" + secrets.token_hex(8), name=FIRST_ADMIN, role="admin", tenant_id=None,
            password_hash=await hash_password(password),
        )  # fmt: skip
        await audit(conn, Acting("paywarden up", "cli"), "operator.create", FIRST_ADMIN, None, "the first admin")
    return IssuedPassword(OperatorView.of(operator), password)


async def listing(services: Services, tenant_id: str | None = None) -> list[OperatorView]:
    """Every operator, or only those of one tenant."""
    async with connection(services.pool) as conn:
        return [OperatorView.of(operator) for operator in await operators.listing(conn, tenant_id)]


async def find(services: Services, name: str, *, tenant_id: str | None = None) -> OperatorView:
    """The operator, if it belongs to `tenant_id` (None: any); NotFound otherwise."""
    async with connection(services.pool) as conn:
        operator = await operators.by_name(conn, name)
    if operator is None or (tenant_id is not None and operator.tenant_id != tenant_id):
        raise NotFound(f"No operator {name!r}; `paywarden operators list` shows them.")
    return OperatorView.of(operator)


async def disable(services: Services, name: str, *, by: Acting, tenant_id: str | None = None) -> OperatorView:
    """Disable the operator at once: their sessions end and they can no longer sign in."""
    await find(services, name, tenant_id=tenant_id)
    if by.via == "console" and by.name == name:
        raise InvalidRequest("You cannot disable yourself; ask another admin.")
    async with transaction(services.pool) as conn:
        operator = await operators.disable(conn, name)
        assert operator is not None  # found above; operators are never deleted
        await operators.end_sessions_of(conn, operator.id)
        await audit(conn, by, "operator.disable", name, operator.tenant_id, None)
    return OperatorView.of(operator)


async def reset(services: Services, name: str, *, by: Acting, tenant_id: str | None = None) -> IssuedPassword:
    """A new one-time password (shown once); the old password and every session of the operator stop working,
    and a disabled operator is enabled again."""
    await find(services, name, tenant_id=tenant_id)
    password = one_time_password()
    hashed = await hash_password(password)
    async with transaction(services.pool) as conn:
        found = await operators.by_name(conn, name)
        assert found is not None
        operator = await operators.set_password(conn, found.id, hashed, temporary=True, enable=True)
        assert operator is not None
        await operators.end_sessions_of(conn, operator.id)
        await audit(conn, by, "operator.reset", name, operator.tenant_id, "new one-time password")
    return IssuedPassword(OperatorView.of(operator), password)


async def audit(conn, by: Acting, action: str, subject: str | None, tenant_id: str | None, detail: str | None) -> None:
    """One entry of the operator audit log, in the caller's transaction."""
    await operators.audit(
        conn, operator=by.name, via=by.via, action=action, subject=subject, tenant_id=tenant_id, detail=detail
    )


async def record(
    services: Services, by: Acting, action: str, subject: str | None, tenant_id: str | None, detail: str | None = None
) -> None:
    """Write an operator audit entry in a transaction of its own (for actions another service carried out)."""
    async with transaction(services.pool) as conn:
        await audit(conn, by, action, subject, tenant_id, detail)


async def audit_log(services: Services, tenant_id: str | None = None, limit: int = 200) -> list[operators.AuditRow]:
    async with connection(services.pool) as conn:
        return await operators.audit_log(conn, tenant_id, limit)
