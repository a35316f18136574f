"""Random sequences of credit operations against a simple in-memory model (hypothesis)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from db import payments
from db.payments import NewPayment
from db.pool import transaction
from server import credits
from server.errors import InsufficientCredits, NotAllowedNow
from server.ledger import credit_moves
from server.tenancy import DEFAULT_TENANT
from tests.helpers import LOCAL, assert_ledger_matches

OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.integers(1, 40)),
        st.tuples(st.just("reserve"), st.integers(1, 30)),
        st.tuples(st.just("reserve"), st.integers(1, 30)),
        st.tuples(st.just("settle"), st.integers(0, 6), st.integers(0, 40)),
        st.tuples(st.just("settle"), st.integers(0, 6), st.integers(0, 40)),  # repeats: replays and refusals
        st.tuples(st.just("release"), st.integers(0, 6)),
        st.tuples(st.just("consume"), st.integers(1, 30)),
    ),
    max_size=16,
)


@dataclass
class Model:
    granted: int = 0
    used: int = 0
    reserved: int = 0
    reservations: list[dict] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return self.granted - self.used - self.reserved


async def grant(services, customer: str, quantity: int) -> None:
    grants = [{"feature": "llm_tokens", "credits": quantity}]
    new = NewPayment(
        tenant_id=DEFAULT_TENANT,
        api_key_id=None,
        customer_id=customer,
        product_id=None,
        amount_minor=100,
        currency="USD",
        description="credits",
        payment_method=None,
        grants=grants,
        provider="sandbox",
    )
    async with transaction(services.pool) as conn:
        payment = await payments.insert(conn, payments.new_payment_id(), new, lease_seconds=None)
        await credit_moves.grant_for_payment(conn, payment)


async def step(services, model: Model, customer: str, n: int, operation: tuple) -> None:
    kind = operation[0]
    if kind == "grant":
        await grant(services, customer, operation[1])
        model.granted += operation[1]
    elif kind in ("reserve", "consume"):
        quantity = operation[1]
        fits = quantity <= model.remaining
        try:
            if kind == "reserve":
                held = await credits.reserve(services, LOCAL, customer, "llm_tokens", quantity, f"k{n}", 600)
                model.reservations.append({"id": held.reservation_id, "quantity": quantity, "status": "held"})
                model.reserved += quantity
            else:
                await credits.consume(services, LOCAL, customer, "llm_tokens", quantity, f"k{n}")
                model.used += quantity
        except InsufficientCredits:
            assert not fits
            return
        assert fits
    elif model.reservations:
        await resolve(services, model, operation)


async def resolve(services, model: Model, operation: tuple) -> None:
    reservation = model.reservations[operation[1] % len(model.reservations)]
    if operation[0] == "settle":
        used = operation[2]
        try:
            await credits.settle(services, LOCAL, reservation["id"], used)
        except InsufficientCredits:
            assert reservation["status"] == "held" and used - reservation["quantity"] > model.remaining
            return
        except NotAllowedNow:
            assert reservation["status"] == "released" or reservation.get("used") != used
            return
        if reservation["status"] == "held":
            model.used += used
            model.reserved -= reservation["quantity"]
            reservation.update(status="settled", used=used)
        else:  # a repeat is only accepted as the identical replay
            assert reservation["status"] == "settled" and reservation["used"] == used
    else:
        try:
            await credits.release(services, LOCAL, reservation["id"])
        except NotAllowedNow:
            assert reservation["status"] == "settled"
            return
        if reservation["status"] == "held":
            model.reserved -= reservation["quantity"]
            reservation["status"] = "released"
        else:
            assert reservation["status"] == "released"


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first_grant=st.integers(1, 60), operations=OPERATIONS)
async def test_random_operations_match_the_model(
    services, db: asyncpg.Connection, first_grant: int, operations: list[tuple]
) -> None:
    customer = f"prop_{uuid.uuid4().hex[:12]}"  # the database outlives examples: each gets its own customer
    model = Model()
    operations = [("grant", first_grant), *operations]
    for n, operation in enumerate(operations):
        await step(services, model, customer, n, operation)
        account = await db.fetchrow(
            "SELECT granted, used, reserved FROM credit_accounts WHERE customer_id = $1", customer
        )
        actual = (account["granted"], account["used"], account["reserved"]) if account else (0, 0, 0)
        assert actual == (model.granted, model.used, model.reserved), operations[: n + 1]
        assert model.remaining >= 0
    if await db.fetchval("SELECT count(*) FROM credit_accounts WHERE customer_id = $1", customer):
        await assert_ledger_matches(db, customer, "llm_tokens")
