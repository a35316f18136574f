"""Prepaid credits on a ledger that never overdraws: real PostgreSQL, real concurrency."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from db import credits as db_credits
from db.pool import transaction
from server import credits
from server.credits import CreditBalance
from server.errors import IdempotencyKeyReused, InsufficientCredits, NotAllowedNow, ReservationNotFound
from server.ledger import credit_moves
from server.services import open_services
from server.tenancy import DEFAULT_TENANT, local_caller
from tests.helpers import LOCAL, assert_ledger_matches, assert_next_expiry_not_late, call, call_error

TENANT_B = local_caller("tenant_b")

CATALOG = """
[[products]]
id = "credits_50"
name = "50 units"
amount_minor = 500
currency = "USD"
grants = [{ feature = "units", credits = 50, low_balance_threshold = 20 }]

[[products]]
id = "credits_100k"
name = "100,000 LLM tokens"
amount_minor = 1000
currency = "USD"
grants = [{ feature = "llm_tokens", credits = 100000, days = 365 }]
"""


@pytest.fixture
def credit_settings(app, tmp_path: Path):
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(CATALOG)
    return app.settings.model_copy(update={"catalog_path": catalog, "duplicate_window_seconds": 0})


async def buy(services, customer: str, product: str, key: str, tenant_id: str = DEFAULT_TENANT) -> None:
    from server import charges
    from server.charges import ChargeInput

    request = ChargeInput(
        customer_id=customer,
        idempotency_key=key,
        product_id=product,
        payment_method="pm_card_visa",
        caller=local_caller(tenant_id),
    )
    payment = await charges.charge(services, request)
    assert payment.status == "succeeded"


async def test_the_whole_loop_over_mcp(app, credit_settings) -> None:
    from mcp import Client

    from tools.server import build_server

    async with (
        open_services(credit_settings) as services,
        Client(build_server(services, local_tenant=DEFAULT_TENANT)) as client,
    ):
        before = await call(client, "check_entitlement", customer_id="ada", feature="llm_tokens", quantity=3000)
        assert before["allowed"] is False and before["reason"] == "no_entitlement"
        assert [offer["product_id"] for offer in before["offers"]] == ["credits_100k"]
        assert before["offers"][0]["credits"] == 100_000

        paid = await call(
            client,
            "create_charge",
            customer_id="ada",
            idempotency_key="buy-1",
            product_id="credits_100k",
            payment_method="pm_card_visa",
        )
        assert paid["status"] == "succeeded"
        reserved = await call(
            client, "reserve_credits", customer_id="ada", feature="llm_tokens", quantity=3000, idempotency_key="job-1"
        )
        assert reserved["balance"] == {"granted": 100_000, "used": 0, "reserved": 3000, "remaining": 97_000}
        settled = await call(
            client, "settle_reservation", reservation_id=reserved["reservation_id"], used_quantity=2500
        )
        assert settled["status"] == "settled" and settled["balance"]["remaining"] == 97_500
        after = await call(client, "check_entitlement", customer_id="ada", feature="llm_tokens", quantity=3000)
        assert after["allowed"] is True
        assert after["balance"] == {"granted": 100_000, "used": 2500, "reserved": 0, "remaining": 97_500}
        too_much = await call_error(
            client, "consume_credits", customer_id="ada", feature="llm_tokens", quantity=200_000, idempotency_key="big"
        )
    assert "Not enough llm_tokens for customer 'ada': 97500 remaining" in too_much


async def test_a_hundred_concurrent_consumers_on_fifty_credits(credit_settings, db) -> None:
    async with open_services(credit_settings) as services:
        await buy(services, "c100", "credits_50", "p")
        results = await asyncio.gather(
            *(credits.consume(services, LOCAL, "c100", "units", 1, f"k{n}") for n in range(100)),
            return_exceptions=True,
        )
    successes = [r for r in results if not isinstance(r, BaseException)]
    refusals = [r for r in results if isinstance(r, BaseException)]
    assert len(successes) == 50 and len(refusals) == 50
    assert all(isinstance(r, InsufficientCredits) and "0 remaining" in r.message for r in refusals)
    await assert_ledger_matches(db, "c100", "units")


async def test_the_consume_that_takes_the_balance_below_the_threshold_tells_it_once(credit_settings, db) -> None:
    """Consumes are sent without the credits.low_balance event; the one that crosses the threshold is told so
    and runs again with it, whatever the concurrency: one event, with the balance after that consume."""
    async with open_services(credit_settings) as services:
        await buy(services, "low", "credits_50", "p")
        await asyncio.gather(*(credits.consume(services, LOCAL, "low", "units", 3, f"k{n}") for n in range(16)))
    events = await db.fetch("SELECT payload FROM outbox_events WHERE type = 'credits.low_balance'")
    assert len(events) == 1
    data = json.loads(events[0]["payload"])["data"]
    assert data["low_balance_threshold"] == 20 and data["customer_id"] == "low"
    assert data["balance"]["remaining"] == 17  # 50, 47, … 20, 17: the first balance below 20
    await assert_ledger_matches(db, "low", "units")


@asynccontextmanager
async def _granting_while(
    services, customer: str, feature: str, quantity: int, *, paid_by: str, until: str | None = None
) -> AsyncIterator[None]:
    """A grant of `quantity` credits held uncommitted (the account row changed, locked) while the block runs."""
    async with transaction(services.pool) as conn:
        account = await db_credits.lock_account(conn, DEFAULT_TENANT, customer, feature)
        lot = await db_credits.insert_lot(conn, account, paid_by, quantity, None if until else 365, until=until)
        await db_credits.post(conn, account, "grant", granted=quantity, lot_id=lot, payment_id=paid_by)
        yield


async def _bought(services, db: asyncpg.Connection, customer: str, *, units: int, payers: int) -> list:
    """`units` packs of 50 units, and `payers` other purchases whose payments the test's late lots name."""
    for n in range(units):
        await buy(services, customer, "credits_50", f"p{n}")
    for n in range(payers):
        await buy(services, customer, "credits_100k", f"q{n}")
    return await db.fetch("SELECT id FROM payments WHERE customer_id = $1 AND product_id = 'credits_100k'", customer)


async def _payment_of(db: asyncpg.Connection, customer: str, product: str) -> str:
    return await db.fetchval("SELECT id FROM payments WHERE customer_id = $1 AND product_id = $2", customer, product)


@pytest.mark.parametrize("account_before", ["all_held", "none"])
async def test_a_consume_that_waits_for_a_grant_gets_the_credits(credit_settings, db, account_before) -> None:
    """The guarded update reads the account as committed (nothing free, or no account yet) and matches nothing
    while a grant is on its way: the consume then waits on the row and decides on it as the grant left it.
    It consumes; it is never told its fresh key was used before, nor asked for an event the feature lacks."""
    async with open_services(credit_settings) as services:
        await buy(services, "wait", "credits_50", "p")  # pays for the llm_tokens lot granted below
        if account_before == "all_held":
            await buy(services, "wait", "credits_100k", "p2")
            await credits.reserve(services, LOCAL, "wait", "llm_tokens", 100_000, "h", 60)
        paid_by = await _payment_of(db, "wait", "credits_50")
        async with _granting_while(services, "wait", "llm_tokens", 1_000, paid_by=paid_by):
            consuming = asyncio.create_task(credits.consume(services, LOCAL, "wait", "llm_tokens", 10, "c"))
            await asyncio.sleep(0.3)  # its guarded update has matched nothing; it waits on the row
        consumed = await consuming
    assert consumed.consumed == 10 and not consumed.replayed and consumed.balance.remaining == 990
    await assert_ledger_matches(db, "wait", "llm_tokens")


async def test_a_lot_granted_already_expired_while_a_consume_waits_is_never_drawn(credit_settings, db) -> None:
    """A subscription period paid late grants a lot whose end has passed. Granted while a consume waits on the
    account, it is expired before the consume draws (as time always acts first), not spent."""
    async with open_services(credit_settings) as services:
        await buy(services, "late", "credits_50", "p1")
        await buy(services, "late", "credits_100k", "p2")  # pays for the expired units lot below
        paid_by = await _payment_of(db, "late", "credits_100k")
        async with _granting_while(services, "late", "units", 100, paid_by=paid_by, until="2020-01-01T00:00:00Z"):
            consuming = asyncio.create_task(credits.consume(services, LOCAL, "late", "units", 30, "c"))
            await asyncio.sleep(0.3)  # past the question before the row: waiting on it
        consumed = await consuming
    expired = await db.fetchrow(
        "SELECT used, written_off, closed_at FROM credit_lots WHERE payment_id = $1 AND feature = 'units'", paid_by
    )
    assert expired["used"] == 0 and expired["written_off"] == 100 and expired["closed_at"] is not None
    assert consumed.consumed == 30 and consumed.balance.remaining == 20
    await assert_ledger_matches(db, "late", "units")


async def _low_balance_events(db: asyncpg.Connection) -> list[dict]:
    rows = await db.fetch("SELECT payload FROM outbox_events WHERE type = 'credits.low_balance' ORDER BY seq")
    return [json.loads(row["payload"])["data"] for row in rows]


@pytest.mark.parametrize(("quantity", "told"), [(35, True), (25, False)])
async def test_a_consume_that_waits_for_a_grant_tells_the_low_balance_it_leaves(
    credit_settings, db, quantity: int, told: bool
) -> None:
    """Decided on the locked row after a grant: below the threshold (from 50 to 15), the event, with the balance
    after this consume; above it (from 50 to 25), none."""
    async with open_services(credit_settings) as services:
        await buy(services, "told", "credits_50", "p")
        await buy(services, "told", "credits_100k", "p2")  # pays for the units lot granted below
        await credits.reserve(services, LOCAL, "told", "units", 40, "h", 60)  # 10 left: the first event
        async with _granting_while(
            services, "told", "units", 40, paid_by=await _payment_of(db, "told", "credits_100k")
        ):
            consuming = asyncio.create_task(credits.consume(services, LOCAL, "told", "units", quantity, "c"))
            await asyncio.sleep(0.3)
        consumed = await consuming
    assert consumed.balance.remaining == 50 - quantity
    events = await _low_balance_events(db)
    assert [event["balance"]["remaining"] for event in events] == ([10, 15] if told else [10])
    await assert_ledger_matches(db, "told", "units")


async def test_a_retry_of_a_consume_waiting_on_a_busy_account_is_a_replay(credit_settings, db) -> None:
    """A client sends the same consume again while the first waits on the account: once the row is free, one
    consumes and the other is its replay, never a refusal for want of credits the first has taken."""
    async with open_services(credit_settings) as services:
        await buy(services, "again", "credits_50", "p")
        async with transaction(services.pool) as conn:
            await db_credits.lock_account(conn, DEFAULT_TENANT, "again", "units")  # someone else's operation
            first = asyncio.create_task(credits.consume(services, LOCAL, "again", "units", 50, "k"))
            await asyncio.sleep(0.2)
            retry = asyncio.create_task(credits.consume(services, LOCAL, "again", "units", 50, "k"))
            await asyncio.sleep(0.2)
        answers = await asyncio.gather(first, retry)
    assert sorted(answer.replayed for answer in answers) == [False, True]
    assert all(answer.balance.remaining == 0 for answer in answers)
    await assert_ledger_matches(db, "again", "units")


async def test_a_reservation_due_when_it_commits_is_expired_before_a_waiting_consume(credit_settings, db) -> None:
    """A reservation with a short life whose transaction began before the consume's commits already due: time
    acts on it first (its credits come back), then the consume."""
    async with open_services(credit_settings) as services:
        await buy(services, "due2", "credits_50", "p")
        async with transaction(services.pool) as conn:
            account = await db_credits.lock_account(conn, DEFAULT_TENANT, "due2", "units")
            held = await db_credits.insert_reservation(conn, db_credits.new_reservation_id(), account, 40, 1)
            await credit_moves.hold(conn, account, held.id, 40)
            await db_credits.post(conn, account, "reserve", reserved=40, reservation_id=held.id)
            await asyncio.sleep(1.2)  # due now, still uncommitted
            consuming = asyncio.create_task(credits.consume(services, LOCAL, "due2", "units", 30, "c"))
            await asyncio.sleep(0.3)
        consumed = await consuming
    assert consumed.consumed == 30 and consumed.balance.remaining == 20
    assert await db.fetchval("SELECT status FROM credit_reservations WHERE id = $1", held.id) == "expired"
    await assert_ledger_matches(db, "due2", "units")


async def test_lots_granted_already_expired_one_after_another_never_fail_a_consume(credit_settings, db) -> None:
    """A burst of late-paid periods, each granting a lot already past its end while consumes queue on the
    account: every consume is done or refused for want of credits, never failed."""
    async with open_services(credit_settings) as services:
        payments = await _bought(services, db, "burst", units=5, payers=8)

        async def late_grants() -> None:
            for payment in payments:
                async with _granting_while(
                    services, "burst", "units", 7, paid_by=payment["id"], until="2020-01-01T00:00:00Z"
                ):
                    await asyncio.sleep(0.12)
                await asyncio.sleep(0.005)

        async def consumer(n: int) -> list[str]:
            said = []
            for i in range(20):
                try:
                    await credits.consume(services, LOCAL, "burst", "units", 1, f"k{n}-{i}")
                    said.append("consumed")
                except Exception as error:  # what the caller would be told, whatever it is
                    said.append(type(error).__name__)
            return said

        _, *said = await asyncio.gather(late_grants(), *(consumer(n) for n in range(12)))
    assert {answer for answers in said for answer in answers} == {"consumed"}  # 240 of the 250 credits
    assert (
        await db.fetchval(
            "SELECT count(*) FROM credit_lots WHERE customer_id = 'burst' AND used > 0 AND expires_at < '2021-01-01'"
        )
        == 0
    )
    await assert_ledger_matches(db, "burst", "units")


async def test_concurrent_reserve_settle_release_consume_keep_the_books(credit_settings, db) -> None:
    rng = random.Random(7)
    async with open_services(credit_settings) as services:
        for n in range(3):
            await buy(services, "mix", "credits_50", f"p{n}")

        done: list[str] = []

        async def worker(n: int) -> None:
            try:
                if rng.random() < 0.3:
                    await credits.consume(services, LOCAL, "mix", "units", rng.randint(1, 5), f"c{n}")
                    done.append("consume")
                    return
                held = await credits.reserve(services, LOCAL, "mix", "units", rng.randint(1, 8), f"r{n}", 60)
                if rng.random() < 0.5:
                    await credits.settle(services, LOCAL, held.reservation_id, rng.randint(0, 10))
                    done.append("settle")
                else:
                    await credits.release(services, LOCAL, held.reservation_id)
                    done.append("release")
            except InsufficientCredits:
                pass  # the balance ran out: the books must still balance, which is the point

        await asyncio.gather(*(worker(n) for n in range(60)))
    assert {"consume", "settle", "release"} <= set(done)  # a run where everything was refused proves nothing
    await assert_ledger_matches(db, "mix", "units")


async def test_every_write_is_idempotent_and_a_reservation_resolves_once(credit_settings, db) -> None:
    async with open_services(credit_settings) as services:
        await buy(services, "idem", "credits_50", "p")
        first = await credits.consume(services, LOCAL, "idem", "units", 5, "once")
        again = await credits.consume(services, LOCAL, "idem", "units", 5, "once")
        assert (first.replayed, again.replayed) == (False, True)
        assert again.model_copy(update={"replayed": False}) == first
        with pytest.raises(IdempotencyKeyReused):
            await credits.consume(services, LOCAL, "idem", "units", 6, "once")

        held = await credits.reserve(services, LOCAL, "idem", "units", 10, "hold", 60)
        held_again = await credits.reserve(services, LOCAL, "idem", "units", 10, "hold", 60)
        assert held_again.replayed and held_again.reservation_id == held.reservation_id
        settled = await credits.settle(services, LOCAL, held.reservation_id, 4)
        settled_again = await credits.settle(services, LOCAL, held.reservation_id, 4)
        assert settled_again.replayed and settled_again.model_copy(update={"replayed": False}) == settled
        with pytest.raises(NotAllowedNow, match="already settled with used_quantity 4"):
            await credits.settle(services, LOCAL, held.reservation_id, 5)
        with pytest.raises(NotAllowedNow, match="already settled"):
            await credits.release(services, LOCAL, held.reservation_id)
    assert await db.fetchval("SELECT used FROM credit_accounts WHERE customer_id = 'idem'") == 9
    await assert_ledger_matches(db, "idem", "units")


async def test_one_key_raced_for_two_features_consumes_once(credit_settings, db) -> None:
    """Two accounts' locks do not serialize a customer's key: the database's unique key does, and the
    loser is told the key was used for a different operation."""
    async with open_services(credit_settings) as services:
        await buy(services, "two", "credits_50", "p1")
        await buy(services, "two", "credits_100k", "p2")
        for n in range(10):
            outcomes = await asyncio.gather(
                credits.consume(services, LOCAL, "two", "units", 1, f"same{n}"),
                credits.consume(services, LOCAL, "two", "llm_tokens", 1, f"same{n}"),
                return_exceptions=True,
            )
            assert sorted(type(o).__name__ for o in outcomes) == ["ConsumeResult", "IdempotencyKeyReused"]
    used = await db.fetchval("SELECT sum(used) FROM credit_accounts WHERE customer_id = 'two'")
    assert used == 10
    await assert_ledger_matches(db, "two", "units")
    await assert_ledger_matches(db, "two", "llm_tokens")


async def test_a_consume_lets_time_act_first(credit_settings, db) -> None:
    async with open_services(credit_settings) as services:
        await buy(services, "due", "credits_50", "p")
        await credits.reserve(services, LOCAL, "due", "units", 30, "h", 60)
        await db.execute("UPDATE credit_reservations SET expires_at = now() - interval '1 second'")
        consumed = await credits.consume(services, LOCAL, "due", "units", 40, "c")  # needs the expired hold back
        assert consumed.balance.model_dump() == {"granted": 50, "used": 40, "reserved": 0, "remaining": 10}
        again = await credits.consume(services, LOCAL, "due", "units", 40, "c")
    assert again.replayed and again.balance == consumed.balance
    kinds = await db.fetch("SELECT kind FROM credit_ledger WHERE customer_id = 'due' ORDER BY id")
    assert [k["kind"] for k in kinds] == ["grant", "reserve", "expire", "consume"]
    await assert_ledger_matches(db, "due", "units")


async def _next_expiry(db: asyncpg.Connection, customer: str, feature: str):
    return await db.fetchval(
        "SELECT next_expiry_at FROM credit_accounts WHERE customer_id = $1 AND feature = $2", customer, feature
    )


async def test_the_account_knows_when_its_next_expiry_is_and_a_passed_one_is_asked_once(credit_settings, db) -> None:
    """A held reservation brings the account's next_expiry_at forward; settled before it expires, it leaves that
    time behind it. Once the time has passed, the next consume asks the tables (nothing is due), consumes, and
    sets it exactly again, so the consume after it takes the guarded update alone."""
    async with open_services(credit_settings) as services:
        await buy(services, "soon", "credits_50", "p")  # a lot without expiry
        assert await _next_expiry(db, "soon", "units") is None
        held = await credits.reserve(services, LOCAL, "soon", "units", 10, "h", 1)
        expires_at = await db.fetchval("SELECT expires_at FROM credit_reservations WHERE id = $1", held.reservation_id)
        assert await _next_expiry(db, "soon", "units") == expires_at
        await credits.settle(services, LOCAL, held.reservation_id, 4)
        assert await _next_expiry(db, "soon", "units") == expires_at  # left behind: only ever early
        await asyncio.sleep(1.1)
        first = await credits.consume(services, LOCAL, "soon", "units", 1, "c1")
        assert await _next_expiry(db, "soon", "units") is None
        second = await credits.consume(services, LOCAL, "soon", "units", 1, "c2")
    assert (first.balance.remaining, second.balance.remaining) == (45, 44)
    kinds = await db.fetch("SELECT kind FROM credit_ledger WHERE customer_id = 'soon' ORDER BY id")
    assert [k["kind"] for k in kinds] == ["grant", "reserve", "settle", "consume", "consume"]  # nothing expired
    await assert_ledger_matches(db, "soon", "units")


async def test_a_lot_with_an_expiry_brings_the_next_expiry_forward_and_time_acts_on_it(credit_settings, db) -> None:
    """A lot granted with an end sets next_expiry_at; once that end passes, a consume lets time act on the lot
    (its credits written off) before it draws from the rest."""
    async with open_services(credit_settings) as services:
        await buy(services, "ends", "credits_50", "p1")
        await buy(services, "ends", "credits_100k", "p2")  # pays for the units lot below
        paid_by = await _payment_of(db, "ends", "credits_100k")
        async with _granting_while(services, "ends", "units", 30, paid_by=paid_by, until="2099-01-01T00:00:00Z"):
            pass
        assert str(await _next_expiry(db, "ends", "units")).startswith("2099-01-01")
        ended = "UPDATE credit_lots SET expires_at = now() - interval '1 second' WHERE payment_id = $1"
        await db.execute(ended, paid_by)
        assert await _next_expiry(db, "ends", "units") <= await db.fetchval("SELECT now()")
        consumed = await credits.consume(services, LOCAL, "ends", "units", 50, "c")
    assert consumed.balance.model_dump() == {"granted": 50, "used": 50, "reserved": 0, "remaining": 0}
    kinds = await db.fetch(
        "SELECT kind FROM credit_ledger WHERE customer_id = 'ends' AND feature = 'units' ORDER BY id"
    )
    assert [k["kind"] for k in kinds] == ["grant", "grant", "expire", "consume"]
    await assert_ledger_matches(db, "ends", "units")


@pytest.mark.parametrize("then", ["the_account_is_right", "a_consume_after_the_end"])
async def test_a_lots_end_changed_by_hand_while_a_consume_waits_keeps_next_expiry_early(
    credit_settings, db, owner_database_url, then: str
) -> None:
    """A lot's end brought forward by hand (the lot row alone, not its account first) while next_expiry_at has
    passed already: the trigger still takes the account row, so a consume waits for that change and sets
    next_expiry_at from it, never from the lot's old end; after the new end, time acts before a draw
    (found by a review: the trigger's UPDATE used to match nothing, and a consume then wrote the old end)."""
    async with open_services(credit_settings) as services:
        await buy(services, "race", "credits_100k", "p1")  # lot A: 100,000 llm_tokens, ends in 365 days
        await buy(services, "race", "credits_50", "p2")  # pays for lot B below
        paid_by = await _payment_of(db, "race", "credits_50")
        async with _granting_while(services, "race", "llm_tokens", 5, paid_by=paid_by, until="2099-01-01T00:00:00Z"):
            pass  # lot B: 5 llm_tokens, ends in 2099
        held = await credits.reserve(services, LOCAL, "race", "llm_tokens", 1, "h", 1)
        await credits.release(services, LOCAL, held.reservation_id)
        await asyncio.sleep(1.1)  # next_expiry_at: the released reservation's end, passed; nothing is due
        by_hand = await asyncpg.connect(owner_database_url)
        try:
            async with by_hand.transaction():
                await by_hand.execute(
                    "UPDATE credit_lots SET expires_at = now() + interval '1.5 seconds'"
                    " WHERE customer_id = 'race' AND feature = 'llm_tokens' AND payment_id <> $1",
                    paid_by,
                )
                consuming = asyncio.create_task(credits.consume(services, LOCAL, "race", "llm_tokens", 10, "c1"))
                await asyncio.sleep(0.3)
        finally:
            await by_hand.close()
        assert (await consuming).balance.remaining == 100_005 - 10
        if then == "a_consume_after_the_end":
            await asyncio.sleep(1.5)  # lot A has ended: its 99,990 free credits expire before any draw
            with pytest.raises(InsufficientCredits):  # 5 left, in lot B
                await credits.consume(services, LOCAL, "race", "llm_tokens", 100, "c2")
    await assert_ledger_matches(db, "race", "llm_tokens")


async def test_short_lived_lots_and_holds_among_consumes_keep_next_expiry_early(credit_settings, db) -> None:
    """The application's own paths at once: lots granted with ends a moment away (some already past), one-second
    reservations settled or released, consumes. Every answer is a result or too few credits; next_expiry_at is
    never late, checked while they run, and the books hold."""
    rng = random.Random(5)
    async with open_services(credit_settings) as services:
        payments = await _bought(services, db, "storm", units=3, payers=6)
        errors: list[str] = []
        looking = asyncio.Lock()

        async def grants() -> None:
            for payment in payments:
                until = (datetime.now(UTC) + timedelta(seconds=rng.uniform(-0.5, 1.5))).isoformat()
                async with _granting_while(services, "storm", "units", 20, paid_by=payment["id"], until=until):
                    await asyncio.sleep(rng.uniform(0, 0.2))
                await asyncio.sleep(0.2)

        async def worker(n: int) -> None:
            for i in range(15):
                try:
                    if rng.random() < 0.5:
                        await credits.consume(services, LOCAL, "storm", "units", rng.randint(1, 4), f"c{n}-{i}")
                    else:
                        held = await credits.reserve(
                            services, LOCAL, "storm", "units", rng.randint(1, 4), f"r{n}-{i}", 1
                        )
                        await asyncio.sleep(rng.choice([0, 0.1, 1.1]))
                        if rng.random() < 0.5:
                            await credits.settle(services, LOCAL, held.reservation_id, rng.randint(0, 5))
                        else:
                            await credits.release(services, LOCAL, held.reservation_id)
                except InsufficientCredits:
                    pass
                except Exception as error:  # what the caller would be told, whatever it is
                    errors.append(f"{type(error).__name__}: {error}")
                async with looking:  # one connection for the checks
                    await assert_next_expiry_not_late(db, DEFAULT_TENANT, "storm", "units")

        await asyncio.gather(grants(), *(worker(n) for n in range(10)))
    assert errors == []
    await assert_ledger_matches(db, "storm", "units")


async def test_a_consume_kept_before_results_were_ledger_entries_replays(credit_settings, db) -> None:
    kept = {"customer_id": "old", "feature": "units", "consumed": 3,
            "balance": {"granted": 50, "used": 3, "reserved": 0, "remaining": 47}}  # fmt: skip
    async with open_services(credit_settings) as services:
        await buy(services, "old", "credits_50", "p")
        await db.execute(
            "INSERT INTO credit_operations (tenant_id, customer_id, idempotency_key, kind, request, result)"
            " VALUES ('default', 'old', 'k', 'consume', $1::text::jsonb, $2::text::jsonb)",
            json.dumps({"feature": "units", "quantity": 3}),
            json.dumps(kept),
        )
        replayed = await credits.consume(services, LOCAL, "old", "units", 3, "k")
    assert replayed.replayed and replayed.model_dump(exclude={"replayed"}) == kept


async def test_settling_more_than_reserved_needs_the_balance(credit_settings, db) -> None:
    async with open_services(credit_settings) as services:
        await buy(services, "over", "credits_50", "p")
        held = await credits.reserve(services, LOCAL, "over", "units", 10, "h", 60)
        with pytest.raises(InsufficientCredits, match="settling 70 against a usable hold of 10"):
            await credits.settle(services, LOCAL, held.reservation_id, 70)
        settled = await credits.settle(services, LOCAL, held.reservation_id, 30)
    assert settled.balance.model_dump() == {"granted": 50, "used": 30, "reserved": 0, "remaining": 20}
    await assert_ledger_matches(db, "over", "units")


async def test_expired_reservations_and_lots(credit_settings, db) -> None:
    async with open_services(credit_settings) as services:
        await buy(services, "time", "credits_50", "p")
        held = await credits.reserve(services, LOCAL, "time", "units", 20, "h", 60)
        await db.execute("UPDATE credit_reservations SET expires_at = now() - interval '1 second'")
        view = await credits.view(services, DEFAULT_TENANT, "time", "units")
        assert view.balance.remaining == 50 and view.balance.reserved == 0
        # the call outlived its hold
        late = await credits.settle(services, LOCAL, held.reservation_id, 5)
        assert "late settle" in late.note and late.balance.used == 5  # still charged, never lost

        other = await credits.reserve(services, LOCAL, "time", "units", 15, "h2", 600)
        await credits.consume(services, LOCAL, "time", "units", 5, "c")
        await db.execute("UPDATE credit_lots SET expires_at = now() - interval '1 second'")
        view = await credits.view(services, DEFAULT_TENANT, "time", "units")  # 25 free expire; 15 held stay held
        assert (view.balance.granted, view.balance.used, view.balance.reserved) == (25, 10, 15)
        released = await credits.release(services, LOCAL, other.reservation_id)
    assert released.balance.model_dump() == {"granted": 10, "used": 10, "reserved": 0, "remaining": 0}
    await assert_ledger_matches(db, "time", "units")


async def test_a_refund_revokes_unspent_credits_and_keeps_the_spent_ones(credit_settings, db) -> None:
    from server import refunds
    from server.refunds import RefundInput

    async with open_services(credit_settings) as services:
        await buy(services, "ref", "credits_50", "p")
        await credits.consume(services, LOCAL, "ref", "units", 12, "c")
        payment_id = await db.fetchval("SELECT id FROM payments WHERE customer_id = 'ref'")
        await refunds.refund(services, RefundInput(payment_id=payment_id, idempotency_key="back", caller=LOCAL))
        view = await credits.view(services, DEFAULT_TENANT, "ref", "units")
    assert (view.balance.granted, view.balance.used, view.balance.remaining) == (12, 12, 0)
    kinds = [row["kind"] for row in await db.fetch("SELECT kind FROM credit_ledger ORDER BY id")]
    assert kinds == ["grant", "consume", "revoke"]
    await assert_ledger_matches(db, "ref", "units")


async def test_the_ledger_refuses_to_change(credit_settings, db) -> None:
    async with open_services(credit_settings) as services:
        await buy(services, "imm", "credits_50", "p")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="credit_ledger is append-only"):
        await db.execute("UPDATE credit_ledger SET granted_delta = 1000")
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("UPDATE credit_accounts SET used = granted + 1")


async def test_a_refund_revokes_held_credits_too(credit_settings, db) -> None:
    from server import refunds
    from server.refunds import RefundInput

    async with open_services(credit_settings) as services:
        await buy(services, "held", "credits_50", "p")
        hold = await credits.reserve(services, LOCAL, "held", "units", 40, "h", 600)
        payment_id = await db.fetchval("SELECT id FROM payments WHERE customer_id = 'held'")
        await refunds.refund(services, RefundInput(payment_id=payment_id, idempotency_key="back", caller=LOCAL))
        with pytest.raises(InsufficientCredits, match="usable hold of 0"):
            await credits.settle(services, LOCAL, hold.reservation_id, 40)
        released = await credits.release(services, LOCAL, hold.reservation_id)
    assert released.balance.model_dump() == {"granted": 0, "used": 0, "reserved": 0, "remaining": 0}
    await assert_ledger_matches(db, "held", "units")


async def test_a_partial_refund_revokes_its_share_of_the_credits(credit_settings, db) -> None:
    from server import refunds
    from server.refunds import RefundInput

    async with open_services(credit_settings) as services:
        await buy(services, "half", "credits_50", "p")
        payment_id = await db.fetchval("SELECT id FROM payments WHERE customer_id = 'half'")
        await refunds.refund(
            services, RefundInput(payment_id=payment_id, idempotency_key="part", amount_minor=250, caller=LOCAL)
        )  # half of 5.00 USD
        view = await credits.view(services, DEFAULT_TENANT, "half", "units")
    assert (view.balance.granted, view.balance.remaining) == (25, 25)
    await assert_ledger_matches(db, "half", "units")


async def test_only_metered_features_take_credit_operations(credit_settings) -> None:
    from server.errors import InvalidRequest

    async with open_services(credit_settings) as services:
        with pytest.raises(InvalidRequest, match="'unitz' is not sold as credits here; metered features: llm_tokens"):
            await credits.consume(services, LOCAL, "x", "unitz", 1, "k")


async def test_a_reserve_replay_shows_the_reservation_as_it_is_now(credit_settings) -> None:
    async with open_services(credit_settings) as services:
        await buy(services, "now", "credits_50", "p")
        held = await credits.reserve(services, LOCAL, "now", "units", 10, "h", 600)
        await credits.settle(services, LOCAL, held.reservation_id, 3)
        again = await credits.reserve(services, LOCAL, "now", "units", 10, "h", 600)
    assert again.replayed and again.status == "settled" and again.balance.used == 3


async def test_concurrent_operations_with_expiry_and_a_refund_keep_the_books(credit_settings, db) -> None:
    from server import refunds
    from server.refunds import RefundInput

    rng = random.Random(11)
    async with open_services(credit_settings) as services:
        for n in range(4):
            await buy(services, "storm", "credits_50", f"p{n}")
        first_payment = await db.fetchval("SELECT id FROM payments WHERE customer_id = 'storm' ORDER BY created_at")

        resolved: list[str] = []

        async def worker(n: int) -> None:
            try:
                held = await credits.reserve(services, LOCAL, "storm", "units", rng.randint(1, 9), f"r{n}", 1)
                await asyncio.sleep(rng.choice([0, 0, 1.2]))  # some outlive their one-second hold
                result = await (
                    credits.settle(services, LOCAL, held.reservation_id, rng.randint(0, 12))
                    if n % 2
                    else credits.release(services, LOCAL, held.reservation_id)
                )
                resolved.append(result.status)
            except InsufficientCredits:
                pass  # refunded or expired credits ran out: the books must still balance

        await db.execute(  # one lot runs out half a second into the storm, by the clock alone
            "UPDATE credit_lots SET expires_at = now() + interval '0.5 seconds' WHERE id IN "
            "(SELECT id FROM credit_lots WHERE customer_id = 'storm' ORDER BY id DESC LIMIT 1)"
        )
        await asyncio.gather(
            *(worker(n) for n in range(40)),
            refunds.refund(
                services, RefundInput(payment_id=first_payment, idempotency_key="storm-refund", caller=LOCAL)
            ),
        )
        await credits.view(services, DEFAULT_TENANT, "storm", "units")
    assert "settled" in resolved and ("released" in resolved or "expired" in resolved)
    await assert_ledger_matches(db, "storm", "units")


async def test_tenants_with_the_same_customer_and_key_never_meet(credit_settings, db) -> None:
    await db.execute("INSERT INTO tenants (id, name) VALUES ('tenant_b', 'Tenant B')")
    async with open_services(credit_settings) as services:
        await buy(services, "same", "credits_50", "pa", DEFAULT_TENANT)
        await buy(services, "same", "credits_50", "pb", "tenant_b")
        a = await credits.consume(services, LOCAL, "same", "units", 7, "k")
        b = await credits.consume(services, TENANT_B, "same", "units", 3, "k")  # same key, own request
        assert not b.replayed
        assert (a.balance.remaining, b.balance.remaining) == (43, 47)

        held = await credits.reserve(services, LOCAL, "same", "units", 10, "h", 600)
        unknown = "rsv_" + "0" * 24
        for attempt in (
            lambda reservation_id: credits.settle(services, TENANT_B, reservation_id, 1),
            lambda reservation_id: credits.release(services, TENANT_B, reservation_id),
        ):
            with pytest.raises(ReservationNotFound) as foreign:
                await attempt(held.reservation_id)
            with pytest.raises(ReservationNotFound) as missing:
                await attempt(unknown)
            assert foreign.value.message == missing.value.message.replace(unknown, held.reservation_id)

        view_a = await credits.view(services, DEFAULT_TENANT, "same", "units")
        view_b = await credits.view(services, "tenant_b", "same", "units")
    assert view_a.balance == CreditBalance(granted=50, used=7, reserved=10, remaining=33)
    assert view_b.balance == CreditBalance(granted=50, used=3, reserved=0, remaining=47)
    await assert_ledger_matches(db, "same", "units", DEFAULT_TENANT)
    await assert_ledger_matches(db, "same", "units", "tenant_b")
