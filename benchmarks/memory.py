"""Memory under load: the resident size of one `paywarden up` through a mixed load (entitlement checks over
MCP and HTTP, charges, lookups, pages, credit consumption, signed webhooks), sampled every few seconds.

Flat means no growth between the end of the warm-up (minute 2 of 10) and the end: caches, rate-limit
windows, idempotency state and connection pools are all bounded, so a server that runs for weeks keeps
the size it had after its first minutes.

    uv run python -m benchmarks --only memory          # 10 minutes
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from benchmarks import credits, entitlements, webhooks
from benchmarks.harness import ScratchDatabase, scratch_database
from benchmarks.load import McpCaller
from benchmarks.paywarden_process import new_key, paywarden_process
from server.config import Settings
from server.services import open_services

FULL = (600.0, 120.0)
"""(seconds of load, seconds of warm-up): the issue's 10 minutes, judged from minute 2."""
QUICK = (20.0, 5.0)
SAMPLE_EVERY = 5.0
CONCURRENCY = 8
WAITING_PAYMENTS = 50_000
"""Payments a webhook can move to succeeded; past them, events for already-paid payments (still ingested)."""
FLAT_WITHIN_MIB = 4.0
"""Growth allowed from minute 2 to the end: allocator noise, not a leak (a leak grows with requests)."""


@dataclass(frozen=True)
class MemoryResult:
    samples: list[tuple[float, float]]
    """(seconds since the load began, resident MiB)."""
    warm_up: float
    requests: int

    @property
    def after_warm_up(self) -> float:
        return next(mib for at, mib in self.samples if at >= self.warm_up)

    @property
    def at_end(self) -> float:
        return self.samples[-1][1]

    @property
    def growth(self) -> float:
        return self.at_end - self.after_warm_up

    @property
    def flat(self) -> bool:
        return self.growth <= FLAT_WITHIN_MIB

    def lines(self) -> list[str]:
        minute = [f"{at / 60:.0f}m {mib:.0f}" for at, mib in self.samples if round(at) % 60 < SAMPLE_EVERY]
        verdict = "flat" if self.flat else "GROWING"
        return [
            f"memory: {self.requests:,} mixed requests; resident MiB at {self.warm_up / 60:.1f} min "
            f"{self.after_warm_up:.1f}, at the end {self.at_end:.1f}: {self.growth:+.1f} MiB, {verdict} "
            f"(within {FLAT_WITHIN_MIB:g} MiB)",
            "  resident MiB by minute: " + ", ".join(minute),
        ]


async def under_mixed_load(quick: bool) -> MemoryResult:
    seconds, warm_up = QUICK if quick else FULL
    async with scratch_database() as database:
        await _seed(database)
        key = await new_key(database)
        async with paywarden_process(database) as (base, pid):
            load = _MixedLoad(base, key)
            await load.open()
            try:
                samples = await _sampled_while(load.run, pid, seconds)
            finally:
                await load.close()
    return MemoryResult(samples, warm_up, load.requests)


async def _seed(database: ScratchDatabase) -> None:
    await entitlements.seed_entitlement(database.owner_url)
    await webhooks.seed_waiting_payments(database.owner_url, WAITING_PAYMENTS)
    async with open_services(Settings(_env_file=None, database_url=database.server_url)) as services:
        await credits.grant(services.pool, "bench", 10**12)


async def _sampled_while(load: Callable[[float], Awaitable[None]], pid: int, seconds: float) -> list[tuple]:
    samples: list[tuple[float, float]] = []
    started = time.monotonic()

    async def sample() -> None:
        while (at := time.monotonic() - started) <= seconds:
            samples.append((at, resident_mib(pid)))
            await asyncio.sleep(SAMPLE_EVERY)

    await asyncio.gather(load(started + seconds), sample())
    samples.append((time.monotonic() - started, resident_mib(pid)))
    return samples


def resident_mib(pid: int) -> float:
    """VmRSS of the process, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kib / 1024


class _MixedLoad:
    """CONCURRENCY workers, each taking the next operation of a fixed mix until the deadline."""

    def __init__(self, base: str, key: str) -> None:
        self._base = base
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        self._http = httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, limits=limits, timeout=30
        )
        self._mcp = [McpCaller(f"{base}/mcp", {"Authorization": f"Bearer {key}"}) for _ in range(CONCURRENCY)]
        self._numbers = itertools.count()
        self._payments: list[str] = []
        self.requests = 0

    async def open(self) -> None:
        for caller in self._mcp:
            await caller.open()

    async def close(self) -> None:
        await self._http.aclose()
        for caller in self._mcp:
            await caller.close()

    async def run(self, deadline: float) -> None:
        await asyncio.gather(*(self._worker(n, deadline) for n in range(CONCURRENCY)))

    async def _worker(self, worker: int, deadline: float) -> None:
        mix = itertools.cycle(self._mix())
        while time.monotonic() < deadline:
            await next(mix)(worker, next(self._numbers))
            self.requests += 1

    def _mix(self) -> list[Callable[[int, int], Awaitable[None]]]:
        return [
            self._check_over_mcp, self._check_over_http, self._charge, self._check_over_mcp, self._webhook,
            self._get_payment, self._consume, self._check_over_http, self._list_payments, self._webhook,
        ]  # fmt: skip

    async def _check_over_mcp(self, worker: int, n: int) -> None:
        await self._mcp[worker].call("check_entitlement", entitlements.CHECK)

    async def _check_over_http(self, worker: int, n: int) -> None:
        _ok(await self._http.get("/v1/customers/bench/entitlements/pro"))

    async def _charge(self, worker: int, n: int) -> None:
        # a customer each: a repeat for one customer would wait for an operator (the duplicate guard)
        body = {"customer_id": f"c{n}", "product_id": "pro_monthly", "payment_method": "pm_card_visa"}
        answer = _ok(await self._http.post("/v1/charges", json=body, headers={"Idempotency-Key": f"m{n}"}))
        self._payments.append(answer.json()["payment_id"])
        del self._payments[:-1000]

    async def _get_payment(self, worker: int, n: int) -> None:
        if self._payments:
            _ok(await self._http.get(f"/v1/charges/{self._payments[n % len(self._payments)]}"))

    async def _list_payments(self, worker: int, n: int) -> None:
        _ok(await self._http.get("/v1/charges", params={"customer_id": f"c{n - n % 10}", "limit": 10}))

    async def _consume(self, worker: int, n: int) -> None:
        body = {"customer_id": "bench", "feature": credits.FEATURE, "quantity": 1}
        _ok(await self._http.post("/v1/credits/consumptions", json=body, headers={"Idempotency-Key": f"u{n}"}))

    async def _webhook(self, worker: int, n: int) -> None:
        body = webhooks.event(n % WAITING_PAYMENTS, f"m{n}_")
        _ok(await self._http.post("/webhooks/stripe", content=body, headers=webhooks.signed(body)))


def _ok(answer: httpx.Response) -> httpx.Response:
    if answer.status_code >= 300:
        raise RuntimeError(f"{answer.request.method} {answer.request.url.path}: {answer.status_code} {answer.text}")
    return answer
