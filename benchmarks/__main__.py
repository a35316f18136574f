"""Every benchmark against its baseline, in one run, on a scratch database (embedded unless DATABASE_URL or
TEST_DATABASE_URL names a server), printed as one table.

    uv run python -m benchmarks               # the full run, for people: figures for docs/benchmarks.md
    uv run python -m benchmarks --quick       # a smoke run (CI): small counts, no ratio judged
    uv run python -m benchmarks --only webhook_ingest

Each row alternates paywarden and its baseline round by round (A B A B …) and shows the median round's
rate and latencies; the ratio is paywarden / baseline; the target is the issue's.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from benchmarks import big_tables, credits, entitlements, memory, webhooks
from benchmarks.harness import Measurement, ScratchDatabase, scratch_database
from server import logs

Pair = Callable[[ScratchDatabase, int, int, int], Awaitable[tuple[Measurement, Measurement]]]


@dataclass(frozen=True)
class Row:
    operation: str
    ours: Measurement
    theirs: Measurement
    target: float | None
    """The issue's target ratio; None for a row shown for understanding, not judged."""


@dataclass(frozen=True)
class Note:
    """Lines printed as they are, for a figure that is not a ratio (memory)."""

    lines: list[str]
    met: bool


@dataclass(frozen=True)
class Benchmark:
    name: str
    run: Callable[[int, bool], Awaitable[list[Row | Note]]]
    """(rounds, quick) -> its rows."""


def paired(
    operation: str, pair: Pair, target: float | None, operations: int, concurrency: int, *, entitlement: bool = False
) -> Callable[[int, bool], Awaitable[list[Row | Note]]]:
    """One row: paywarden against its baseline on a scratch database of their own."""

    async def run(rounds: int, quick: bool) -> list[Row | Note]:
        async with scratch_database() as database:
            if entitlement:
                await entitlements.seed_entitlement(database.owner_url)
            count = max(int(operations * (QUICK_SCALE if quick else 1)), concurrency)
            ours, theirs = await pair(database, rounds, count, concurrency)
        return [Row(operation, ours, theirs, target)]

    return run


async def on_big_tables(rounds: int, quick: bool) -> list[Row | Note]:
    """Each hot path on a big database (ours) against a nearly empty one (the baseline)."""
    customers = QUICK_CUSTOMERS if quick else big_tables.CUSTOMERS
    operations = 50 if quick else 1000
    rows = await big_tables.compare(rounds, operations, 8, customers)
    target = round(1 / big_tables.WITHIN, 2)
    return [Row(f"{row.operation} ({customers:,} customers)", row.big, row.empty, target) for row in rows]


async def on_memory(rounds: int, quick: bool) -> list[Row | Note]:
    result = await memory.under_mixed_load(quick)
    return [Note(result.lines(), result.flat)]


QUICK_SCALE = 0.05
QUICK_CUSTOMERS = 20_000
BENCHMARKS = (
    Benchmark(
        "entitlement_mcp",
        paired("check_entitlement over MCP HTTP + key", entitlements.over_mcp, 0.8, 1500, 8, entitlement=True),
    ),
    Benchmark(
        "entitlement_mcp_same_transport",
        paired(
            "  … vs bare on paywarden's transport",
            entitlements.over_mcp_same_transport,
            None,
            1500,
            8,
            entitlement=True,
        ),
    ),
    Benchmark(
        "entitlement_http",
        paired("GET /v1/…/entitlements/{feature}", entitlements.over_http, 0.8, 3000, 8, entitlement=True),
    ),
    Benchmark("webhook_ingest", paired("signed webhook ingest", webhooks.ingest, 0.8, 1500, 8)),
    Benchmark("consume_credits", paired("consume_credits", credits.consume, 0.5, 1500, 8)),
    Benchmark("big_tables", on_big_tables),
    Benchmark("memory", on_memory),
)


async def run(names: list[str], rounds: int, quick: bool) -> list[Row | Note]:
    results = []
    for benchmark in BENCHMARKS:
        if names and benchmark.name not in names:
            continue
        for row in await benchmark.run(rounds, quick):
            results.append(row)
            print("\n".join(row.lines) if isinstance(row, Note) else _line(row), flush=True)
    return results


HEADER = (
    f"{'operation':<54} {'paywarden/s':>11} {'baseline/s':>10} {'ratio':>6} {'target':>7} "
    f"{'p50 ms':>7} {'p99 ms':>7} {'base p50':>8} {'base p99':>8}"
)


def _line(row: Row) -> str:
    ours, theirs = row.ours, row.theirs
    ratio = ours.per_second / theirs.per_second
    if row.target is None:
        target, met = "—", ""
    else:
        target, met = "≥" + format(row.target, ".2g"), "met" if ratio >= row.target else "MISSED"
    line = (
        f"{row.operation:<54} {ours.per_second:>11.0f} {theirs.per_second:>10.0f} {ratio:>6.2f} "
        f"{target:>5} {met:<6} {ours.p50_ms:>7.2f} {ours.p99_ms:>7.2f} "
        f"{theirs.p50_ms:>8.2f} {theirs.p99_ms:>8.2f}"
    )
    if ours.cpu_ms:
        line += f"\n  CPU ms per operation: paywarden {_cpu(ours)}; baseline {_cpu(theirs)}"
    return line


def _cpu(measurement: Measurement) -> str:
    return ", ".join(f"{name} {ms:.2f}" for name, ms in measurement.cpu_ms.items())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small counts, one round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side (median shown)")
    parser.add_argument("--only", action="append", default=[], help="run only this benchmark (repeatable)")
    args = parser.parse_args()
    logs.configure("text")
    rounds = 1 if args.quick else args.rounds
    print(f"{platform.node()}: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(HEADER)
    asyncio.run(run(args.only, rounds, args.quick))


if __name__ == "__main__":
    main()
