"""Every setting paywarden reads, from the environment or a `.env` file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.errors import ConfigurationError

DEFAULT_CATALOG = Path(__file__).with_name("catalog.toml")
PROVIDER_ATTEMPTS = 3
"""One provider call plus the SDK's two network retries."""
DEFAULT_MAX_CHARGE_MINOR = 100_000
"""A fresh install never lets one call move more than this (1,000.00 in a two-decimal currency)."""
MAX_RATE_PER_MINUTE = 2**31 - 1
"""The most requests per minute an API key may be given (the database keeps a 32-bit integer)."""


class Settings(BaseSettings):
    """paywarden's configuration; every field can be set as `PAYWARDEN_<NAME>` unless noted."""

    model_config = SettingsConfigDict(env_prefix="PAYWARDEN_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "PAYWARDEN_DATABASE_URL")
    )
    db_pooler: Literal["none", "transaction"] = "none"
    """`transaction` when DATABASE_URL goes through a transaction-pooling PgBouncer: no prepared statements
    are kept across transactions (asyncpg's statement cache is off)."""
    listen_database_url: str | None = None
    """A direct connection (not through a pooler) on which this process hears API key revocations, so it can
    cache keys; unset, DATABASE_URL — or, with PAYWARDEN_DB_POOLER=transaction, no cache at all."""
    migration_database_url: str | None = None
    """The role that owns paywarden's tables and runs the migrations; unset, DATABASE_URL's role does (with
    the embedded PostgreSQL: its superuser migrates, and the server runs as paywarden_server)."""
    allow_owner_role: bool = False
    """Let the server run as a superuser or as the tables' owner (not recommended: append-only would then
    hold only against paywarden's own code)."""
    data_dir: Path = Path(user_data_dir("paywarden"))
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    public_url: str | None = None
    """Where `paywarden up` is reached from outside; the sandbox's hosted pages and webhooks use it."""

    provider: Literal["sandbox", "stripe"] = "sandbox"
    stripe_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("STRIPE_API_KEY", "PAYWARDEN_STRIPE_API_KEY")
    )
    stripe_webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("STRIPE_WEBHOOK_SECRET", "PAYWARDEN_STRIPE_WEBHOOK_SECRET"),
    )
    standard_webhook_secret: SecretStr | None = None
    """`whsec_…` (several, comma-separated, during a rotation) for POST /webhooks/standard."""
    stripe_api_base: str | None = None
    """Overrides Stripe's API address (the sandbox provider sets it to its own)."""

    dispute_policy: Literal["suspend", "keep"] = "suspend"
    """suspend: a dispute opening pauses what its payment granted (entitlements, unspent credits) until it
    closes; keep: a dispute changes no access (a lost one still revokes, like a full refund)."""
    dispute_auto_evidence: bool = False
    """Stage the evidence from the ledger as soon as a dispute opens (submitting it stays an operator's call)."""

    allow_live: bool = False
    """A live Stripe key (sk_live_…) is refused unless this is true."""

    max_charge_minor: int | None = Field(default=DEFAULT_MAX_CHARGE_MINOR)
    """The largest single charge, in the minor units of its currency; `0` or `none` turns the cap off."""
    daily_limit_minor: int | None = Field(default=None, gt=0)
    """The most one customer may be charged in any rolling 24 hours, per currency, in minor units."""
    allowed_currencies: str | None = None
    """Comma-separated ISO 4217 codes; unset allows every currency."""
    approval_threshold_minor: int = Field(default=5000, ge=0)
    """Charges above this amount (minor units of their currency) need a person's approval."""
    operator_approval_above_minor: int | None = Field(default=50_000, ge=0)
    """Charges above this amount need an operator's approval, whatever the API key's approval level
    (and for the local stdio caller too); unset (empty) leaves it to each key."""
    approval_expiry_hours: float = Field(default=24.0, gt=0)
    """A charge waiting in requires_approval longer than this is canceled (it no longer counts against limits)."""
    max_held_per_customer: int = Field(default=5, ge=1)
    """The most charges one customer may have waiting for approval at once; more are refused."""
    duplicate_window_seconds: int = Field(default=600, ge=0)
    """A second identical charge under a different key within this window needs approval."""
    payment_page_hours: int = Field(default=24, ge=1, le=24)
    """How long a payment page (Checkout) or a page for saving a card stays open (Stripe allows 0.5 to 24 hours)."""
    submit_lease_seconds: float = Field(default=90.0, gt=0)
    """How long one process may talk to the provider about a payment before another may take over.
    Must outlast the slowest provider call (three attempts of provider_timeout_seconds)."""
    reconcile_after_seconds: float = Field(default=60.0, ge=0)
    """Open payments untouched this long are checked against the provider by the reconciler."""
    reconcile_interval_seconds: float = Field(default=60.0, ge=0)
    """How often `paywarden up` runs the reconciler in the background; 0 turns it off."""
    reconcile_event_lookback_hours: int = Field(default=72, ge=1, le=720)
    """On its first pass the reconciler reads the provider's events this far back (Stripe keeps 30 days)."""
    max_event_attempts: int = Field(default=10, ge=1)
    """A stored webhook event whose handling failed this many times is parked for an operator (replay retries it)."""
    webhook_confirm_with_provider: bool = False
    """Fetch the provider's own record before applying a webhook that says money arrived."""
    request_state_key: SecretStr | None = Field(default=None, min_length=32)
    """Seals MCP multi-round state (approval answers). Set the same value on every process behind one
    address; unset, each process makes its own, which is right for one process."""
    stdio_tenant: str = "default"
    """The tenant `paywarden mcp` (stdio, local and trusted, no API key) acts as."""
    allowed_hosts: str = ""
    """Extra Host values /mcp accepts besides localhost (comma-separated, e.g. `pay.example.com,pay.example.com:443`);
    other hosts get 421 (DNS rebinding protection). Browser origins allowed are the same hosts over http(s)."""
    rate_limit_per_minute: int = Field(default=600, ge=1, le=MAX_RATE_PER_MINUTE)
    """Default HTTP requests per minute for a new API key (`keys create --rate-per-minute` overrides it).
    An MCP client makes several per tool call (initialize, notifications, the call itself)."""
    metrics_token: SecretStr | None = None
    """When set, /metrics answers only `Authorization: Bearer <token>` (keep /metrics internal anyway)."""
    secret_key: SecretStr | None = Field(default=None, min_length=32)
    """Signs the console's cookies. Unset, a key is generated once per database and kept in it, so every
    process on one database shares it; set it to keep the key out of the database."""
    session_idle_minutes: int = Field(default=30, ge=1)
    """A console session unused this long ends (the operator signs in again)."""
    session_max_hours: int = Field(default=12, ge=1)
    """A console session ends this long after sign-in, however busy."""
    signin_failures_per_name: int = Field(default=5, ge=1)
    """Failed console sign-ins allowed per operator name in any 15 minutes; more are refused (429)."""
    signin_failures_per_address: int = Field(default=20, ge=1)
    """Failed console sign-ins allowed per client address in any 15 minutes; more are refused (429)."""
    log_format: Literal["text", "json"] = "text"
    """`json` writes JSON lines with payment_id / event_id fields, for log pipelines."""
    test_crash_at: str | None = None
    """Test-only fault hook: SIGKILL this process at the named point of a charge."""

    allow_private_webhook_urls: bool = False
    """Let webhook endpoints be on loopback or private addresses (tests and local development only)."""
    webhook_delivery_interval_seconds: float = Field(default=1.0, gt=0)
    """How often `paywarden up` looks for webhook deliveries that are due."""
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long a merchant's endpoint has to answer one delivery."""
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0)
    """The first retry's delay; each next one doubles (with jitter) up to webhook_retry_max_seconds."""
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_failing_after_seconds: float = Field(default=86_400.0, ge=0)
    """An endpoint whose every attempt has failed for this long (and at least webhook_failing_after_attempts
    times in a row) is marked failing: nothing more is sent until an operator enables it again."""
    webhook_failing_after_attempts: int = Field(default=5, ge=1)

    catalog_path: Path = DEFAULT_CATALOG
    webhook_tolerance_seconds: int = Field(default=300, ge=1)
    provider_timeout_seconds: float = Field(default=20.0, gt=0)
    sandbox_delivery_interval_seconds: float = Field(default=1.0, gt=0)
    sandbox_deliver_webhooks: bool = True
    """False keeps the sandbox's events undelivered (to show the reconciler working alone)."""
    sandbox_webhook_url: str | None = None
    """Where the sandbox delivers its events; unset, to this process's own /webhooks/stripe."""

    @field_validator("max_charge_minor", mode="before")
    @classmethod
    def _no_cap_when_told(cls, value: object) -> object:
        """`none` turns the per-charge cap off explicitly, as 0 does (unset keeps the safe default)."""
        if isinstance(value, str) and value.strip().lower() == "none":
            return None
        return value

    @field_validator("max_charge_minor", mode="after")
    @classmethod
    def _cap_is_positive(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError("must be a positive number of minor units, or 0 or none to turn the cap off")
        return None if value == 0 else value  # 0 however written (00, +0)

    @field_validator("operator_approval_above_minor", mode="before")
    @classmethod
    def _empty_leaves_it_to_each_key(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _lease_outlasts_provider_calls(self) -> Settings:
        slowest = self.provider_timeout_seconds * PROVIDER_ATTEMPTS + 5  # + the SDK's retry back-off
        if self.submit_lease_seconds < slowest:
            raise ValueError(
                f"PAYWARDEN_SUBMIT_LEASE_SECONDS ({self.submit_lease_seconds:g}) must be at least {slowest:g}: "
                f"{PROVIDER_ATTEMPTS} provider attempts of PAYWARDEN_PROVIDER_TIMEOUT_SECONDS "
                f"({self.provider_timeout_seconds:g}) plus a margin"
            )
        return self

    @property
    def allowed_currency_set(self) -> frozenset[str] | None:
        if not self.allowed_currencies:
            return None
        return frozenset(code.strip().upper() for code in self.allowed_currencies.split(",") if code.strip())

    @property
    def listen_url(self) -> str | None:
        """Where to LISTEN for revocations; None when there is no direct connection to do it on."""
        if self.listen_database_url:
            return self.listen_database_url
        return None if self.db_pooler == "transaction" else self.database_url

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def serves_https(self) -> bool:
        """People reach paywarden over https (console cookies are then Secure)."""
        return self.base_url.startswith("https://")

    @property
    def embedded_pgdata(self) -> Path:
        return self.data_dir / "pgdata"


def read_settings(env_file: str | None, flags: dict[str, object]) -> Settings:
    """The environment's settings (and `env_file`'s) with command-line `flags` (by field name) on top; or a
    ConfigurationError saying each problem on a line of its own, naming the variable or flag to change."""
    try:
        return Settings(_env_file=env_file, **flags)
    except ValidationError as error:
        problems = [_problem(detail, flags) for detail in error.errors(include_url=False)]
        raise ConfigurationError("\n".join(problems)) from None


def _problem(detail: ErrorDetails, flags: dict[str, object]) -> str:
    if not detail["loc"]:  # a rule across settings: its message names them
        return detail["msg"].removeprefix("Value error, ").rstrip(".") + "."
    field = str(detail["loc"][0])
    named = f"--{field.replace('_', '-')}" if field in flags else _variable(field)
    given = detail["input"]
    shown = "" if _is_secret(field) else f"; got {given[:40]!r}" if isinstance(given, str) else f"; got {given}"
    return f"{named} {_in_words(detail)}{shown}."


def _variable(field: str) -> str:
    """The environment variable a field is read from (its alias, like DATABASE_URL, where it has one)."""
    alias = Settings.model_fields[field].validation_alias if field in Settings.model_fields else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return field if field.isupper() else f"PAYWARDEN_{field.upper()}"


def _is_secret(field: str) -> bool:
    """Secrets and database URLs (which may carry a password) are never repeated back."""
    info = Settings.model_fields.get(field)
    name = field.lower()
    named_so = name.endswith("url") or any(word in name for word in ("secret", "key", "token", "password"))
    return named_so or (info is not None and "SecretStr" in str(info.annotation))


_IN_WORDS = {
    "greater_than": "must be more than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "literal_error": "must be {expected}",
    "too_short": "must be at least {min_length} characters long",
    "too_long": "must be at most {max_length} characters long",
}


def _in_words(detail: ErrorDetails) -> str:
    template = _IN_WORDS.get(detail["type"])
    if template is not None:
        limits = {
            name: f"{value:g}" if isinstance(value, float) else value for name, value in detail.get("ctx", {}).items()
        }
        return template.format(**limits)
    said = detail["msg"].removeprefix("Value error, ")
    return f"must be {said.removeprefix('Input should be ')}" if said.startswith("Input should be ") else said
