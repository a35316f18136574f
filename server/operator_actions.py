"""What a signed-in operator does in the console, through the same services the CLI uses.

Each action checks the operator's role and tenant first (another tenant's payment, key or event is
NotFound, as if it did not exist), then calls the service (`charges.approve`, `refunds.refund`,
`inbox.retry`, `api_keys.issue`, …), then writes the operator audit log. Changes to a payment are also in
its own audit timeline, with the actor `operator` and a reason naming them, exactly as from the CLI.
"""

from __future__ import annotations

from db.api_keys import ApiKey
from db.payments import Payment
from server import api_keys, charges, customers, inbox, operators, payment_history, refunds, tenants, webhook_endpoints
from server.api_keys import IssuedKey
from server.customers import LinkResult
from server.errors import InvalidRequest, NotFound, NotPermitted
from server.inbox import Ingested
from server.money import format_amount, parse_amount
from server.operators import IssuedPassword, OperatorView, SignedIn
from server.reconciler import ReconcileReport, reconcile_once
from server.refunds import RefundInput, RefundResult
from server.services import Services
from server.webhook_endpoints import EndpointWithSecret

MAX_REASON_LENGTH = 500


async def approve(services: Services, operator: SignedIn, payment_id: str) -> Payment:
    operator.require("decide")
    held = await payment_history.find(services, payment_id, operator.tenant_id)
    payment = await charges.approve(services, held.id, operator.name)
    await operators.record(services, operator.acting, "payment.approve", held.id, held.tenant_id, payment.status)
    return payment


async def reject(services: Services, operator: SignedIn, payment_id: str, reason: str = "") -> Payment:
    operator.require("decide")
    held = await payment_history.find(services, payment_id, operator.tenant_id)
    payment = await charges.reject(services, held.id, operator.name, _reason(reason))
    await operators.record(services, operator.acting, "payment.reject", held.id, held.tenant_id, _reason(reason))
    return payment


def refund_amount(payment: Payment, amount: str) -> int | None:
    """The amount typed (in the payment's currency), or None for everything that is left."""
    if not amount.strip():
        return None
    minor = parse_amount(amount, payment.currency)
    if minor <= 0:
        raise InvalidRequest(f"A refund is a positive amount; got {amount!r}.")
    return minor


async def preview_refund(
    services: Services, operator: SignedIn, payment_id: str, amount: str = ""
) -> tuple[payment_history.PaymentHistory, int]:
    """The refund's confirm step: the payment and the amount that would go back (nothing is refunded). What
    the refund itself would refuse (nothing left, too much) is refused here already."""
    operator.require("refund")
    history = await payment_history.history(services, payment_id, operator.tenant_id)
    payment = await payment_history.find(services, payment_id, operator.tenant_id)
    return history, refunds.amount_to_refund(payment, history.in_flight_minor, refund_amount(payment, amount))


async def refund(
    services: Services, operator: SignedIn, payment_id: str, *, idempotency_key: str, amount: str = "", reason: str = ""
) -> RefundResult:
    """Idempotent on `idempotency_key` (the console puts one in each refund form): a double submit refunds once."""
    operator.require("refund")
    payment = await payment_history.find(services, payment_id, operator.tenant_id)
    if not idempotency_key.strip() or len(idempotency_key) > 200:
        raise InvalidRequest("The refund form lost its idempotency key; open the payment again and retry.")
    request = RefundInput(
        payment_id=payment.id,
        idempotency_key=f"console:{idempotency_key.strip()}",
        amount_minor=refund_amount(payment, amount),
        reason=_reason(reason),
        caller=operator.caller_for(payment.tenant_id),
    )
    result = await refunds.refund(services, request)
    if not result.replayed:
        detail = f"{result.refund_id}: {format_amount(result.amount_minor, result.currency)}, {result.status}"
        await operators.record(services, operator.acting, "payment.refund", payment.id, payment.tenant_id, detail)
    return result


async def replay(services: Services, operator: SignedIn, inbox_id: int) -> Ingested:
    """Apply one stored event again (an inbox row: an event id may be stored once per endpoint)."""
    operator.require("replay")
    stored = await inbox.event(services, inbox_id, operator.tenant_id)
    result = await inbox.replay_one(services, inbox_id)
    await operators.record(
        services, operator.acting, "webhook.replay", stored.event_id, stored.tenant_id, result.outcome
    )
    return result


async def link_customer(
    services: Services,
    operator: SignedIn,
    *,
    tenant_id: str,
    customer_id: str,
    provider_customer_id: str,
    force: bool = False,
) -> LinkResult:
    """`paywarden customers link` from the console: the same service, under the operator's name. Another
    tenant's customer is NotFound; a tenant's operator links only that tenant's customers."""
    operator.require("link_customers")
    tenant = operator.tenant_id or tenant_id.strip()
    if not operator.may_see(tenant) or not await tenants.exists(services, tenant):
        raise NotFound(f"No tenant {tenant!r}.")
    wanted = provider_customer_id.strip()
    result = await customers.link(services, tenant, customer_id.strip(), wanted, force=force, operator=operator.name)
    previous = result.previous_provider_customer_id
    detail = f"linked to {wanted}" + (f" (was {previous})" if previous not in (None, wanted) else "")
    await operators.record(services, operator.acting, "customer.link", customer_id.strip(), tenant, detail)
    return result


async def reconcile(services: Services, operator: SignedIn) -> ReconcileReport:
    """One reconciler pass now (it covers every tenant: only platform operators may start one)."""
    operator.require("reconcile")
    _require_platform(operator, "run the reconciler (it covers every tenant)")
    report = await reconcile_once(services)
    await operators.record(services, operator.acting, "reconcile", None, None, report.summary())
    return report


async def issue_key(
    services: Services,
    operator: SignedIn,
    *,
    tenant_id: str,
    name: str,
    scopes: str,
    budget: str = "",
    budget_currency: str = "",
    rate_per_minute: str = "",
    approval: str = "operator",
) -> IssuedKey:
    """A new API key, shown once; a tenant's admin makes keys for that tenant only (an existing one).
    `approval`: who approves its charges that need approval (`operator`, or `client`: the person, through the
    agent's MCP client)."""
    operator.require("manage_keys")
    tenant = operator.tenant_id or tenant_id.strip()
    if not await tenants.exists(services, tenant):
        raise InvalidRequest(f"No tenant {tenant!r}; create it first.")
    budget_minor, currency = _budget(budget, budget_currency)
    issued = await api_keys.issue(
        services,
        tenant_id=tenant,
        name=name.strip(),
        scopes=api_keys.parse_scopes(scopes),
        rate_per_minute=_whole_number(rate_per_minute, "requests per minute"),
        budget_minor=budget_minor,
        budget_currency=currency,
        approval=api_keys.parse_approval(approval),
    )
    detail = f"{issued.key.name}: scopes {','.join(issued.key.scopes)}, approval by {issued.key.approval}"
    await operators.record(services, operator.acting, "key.create", issued.key.id, tenant, detail)
    return issued


def _budget(amount: str, currency: str) -> tuple[int | None, str | None]:
    """A budget typed as an amount in its currency's units (`100.00`, `USD`), in minor units; none when empty."""
    if not amount.strip():
        return None, None
    if not currency.strip():
        raise InvalidRequest("A budget needs its currency.")
    return parse_amount(amount, currency), currency.strip().upper()


def _whole_number(text: str, what: str) -> int | None:
    if not text.strip():
        return None
    if not text.strip().isdigit():
        raise InvalidRequest(f"{what.capitalize()} is a whole number; got {text!r}.")
    return int(text.strip())


async def revoke_key(services: Services, operator: SignedIn, key_id: str) -> ApiKey:
    operator.require("manage_keys")
    key = await api_keys.find(services, key_id, operator.tenant_id)
    revoked = await api_keys.revoke(services, key.id)
    await operators.record(services, operator.acting, "key.revoke", key.id, key.tenant_id, key.name)
    return revoked


async def create_tenant(services: Services, operator: SignedIn, tenant_id: str, name: str = "") -> bool:
    _require_platform_admin(operator, "create tenants")
    created = await tenants.create(services, tenant_id.strip(), name.strip() or None)
    if created:
        await operators.record(services, operator.acting, "tenant.create", tenant_id.strip(), tenant_id.strip(), name)
    return created


async def set_tenant_webhook_secret(services: Services, operator: SignedIn, tenant_id: str, secret: str) -> None:
    """The secret the tenant's own endpoint verifies; an empty one closes the endpoint."""
    _require_platform_admin(operator, "change a tenant's webhook endpoint")
    await tenants.set_webhook_secret(services, tenant_id, secret.strip() or None)
    action = "tenant.webhook_secret.set" if secret.strip() else "tenant.webhook_secret.remove"
    await operators.record(services, operator.acting, action, tenant_id, tenant_id, None)


async def create_operator(
    services: Services, operator: SignedIn, *, name: str, role: str, tenant_id: str = ""
) -> IssuedPassword:
    """A tenant's admin creates operators of that tenant only; a platform admin, of any tenant or none."""
    operator.require("manage_operators")
    tenant = operator.tenant_id or tenant_id.strip() or None
    return await operators.create(services, name=name.strip(), role=role, tenant_id=tenant, by=operator.acting)


async def disable_operator(services: Services, operator: SignedIn, name: str) -> OperatorView:
    operator.require("manage_operators")
    return await operators.disable(services, name, by=operator.acting, tenant_id=operator.tenant_id)


async def reset_operator(services: Services, operator: SignedIn, name: str) -> IssuedPassword:
    operator.require("manage_operators")
    return await operators.reset(services, name, by=operator.acting, tenant_id=operator.tenant_id)


async def add_endpoint(
    services: Services, operator: SignedIn, *, tenant_id: str, url: str, event_types: list[str]
) -> EndpointWithSecret:
    """A tenant's webhook endpoint (its signing secret shown once); a tenant's admin adds them for that tenant."""
    operator.require("manage_endpoints")
    tenant = operator.tenant_id or tenant_id.strip()
    added = await webhook_endpoints.add(services, tenant_id=tenant, url=url, event_types=event_types)
    await operators.record(services, operator.acting, "endpoint.add", added.endpoint_id, tenant, added.url)
    return added


async def change_endpoint(services: Services, operator: SignedIn, endpoint_id: str, change: str) -> str:
    """`enable`, `disable` or `remove` an endpoint; what was done, said for a person."""
    operator.require("manage_endpoints")
    scope = {"tenant_id": operator.tenant_id}
    if change == "enable":
        endpoint, resumed = await webhook_endpoints.enable(services, endpoint_id, **scope)
        said = f"{endpoint.endpoint_id} is enabled; {webhook_endpoints.resumed_said(resumed)}."
    elif change == "disable":
        endpoint = await webhook_endpoints.disable(services, endpoint_id, **scope)
        said = f"{endpoint.endpoint_id} is disabled: its events queue until it is enabled again."
    elif change == "remove":
        endpoint = await webhook_endpoints.remove(services, endpoint_id, **scope)
        said = f"{endpoint.endpoint_id} ({endpoint.url}) is removed: nothing more is sent to it."
    else:
        raise InvalidRequest(f"Endpoints are enabled, disabled or removed; not {change!r}.")
    await operators.record(services, operator.acting, f"endpoint.{change}", endpoint.endpoint_id, endpoint.tenant, None)
    return said


async def rotate_endpoint_secret(services: Services, operator: SignedIn, endpoint_id: str) -> EndpointWithSecret:
    """A new signing secret (shown once); the previous one signs beside it for a day."""
    operator.require("manage_endpoints")
    rotated = await webhook_endpoints.rotate_secret(services, endpoint_id, tenant_id=operator.tenant_id)
    await operators.record(services, operator.acting, "endpoint.rotate_secret", endpoint_id, rotated.tenant, None)
    return rotated


async def redeliver(services: Services, operator: SignedIn, event_id: str) -> webhook_endpoints.Redelivery:
    """Send one of paywarden's events to the tenant's app again."""
    operator.require("replay")
    done = await webhook_endpoints.redeliver(services, event_id.strip(), tenant_id=operator.tenant_id)
    await operators.record(services, operator.acting, "event.redeliver", event_id.strip(), operator.tenant_id, None)
    return done


def _reason(reason: str) -> str | None:
    return reason.strip()[:MAX_REASON_LENGTH] or None


def _require_platform(operator: SignedIn, to: str) -> None:
    if not operator.is_platform:
        raise NotPermitted(f"Only a platform operator (one without a tenant) may {to}.")


def _require_platform_admin(operator: SignedIn, to: str) -> None:
    operator.require("manage_operators")
    _require_platform(operator, to)
