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

from benchmarks import credits, entitlements, webhooks
from benchmarks.harness import Measurement, ScratchDatabase, scratch_database
from server import logs

Pair = Callable[[ScratchDatabase, int, int, int], Awaitable[tuple[Measurement, Measurement]]]


@dataclass(frozen=True)
class Benchmark:
    name: str
    operation: str
    pair: Pair
    target: float | None
    """The issue's target ratio; None for a row shown for understanding, not judged."""
    operations: int
    concurrency: int
    needs_entitlement: bool = False


BENCHMARKS = (
    Benchmark("entitlement_mcp", "check_entitlement over MCP HTTP + key", entitlements.over_mcp, 0.8, 1500, 8, True),
    Benchmark(
        "entitlement_mcp_same_transport",
        "  … vs bare on paywarden's transport",
        entitlements.over_mcp_same_transport,
        None,
        1500,
        8,
        True,
    ),
    Benchmark("entitlement_http", "GET /v1/…/entitlements/{feature}", entitlements.over_http, 0.8, 3000, 8, True),
    Benchmark("webhook_ingest", "signed webhook ingest", webhooks.ingest, 0.8, 1500, 8),
    Benchmark("consume_credits", "consume_credits", credits.consume, 0.5, 1500, 8),
)


async def run(names: list[str], rounds: int, scale: float) -> list[tuple[Benchmark, Measurement, Measurement]]:
    results = []
    for benchmark in BENCHMARKS:
        if names and benchmark.name not in names:
            continue
        async with scratch_database() as database:
            if benchmark.needs_entitlement:
                await entitlements.seed_entitlement(database.owner_url)
            operations = max(int(benchmark.operations * scale), benchmark.concurrency)
            ours, theirs = await benchmark.pair(database, rounds, operations, benchmark.concurrency)
        results.append((benchmark, ours, theirs))
        print(_line(benchmark, ours, theirs), flush=True)
    return results


HEADER = (
    f"{'operation':<40} {'paywarden/s':>11} {'baseline/s':>10} {'ratio':>6} {'target':>7} "
    f"{'p50 ms':>7} {'p99 ms':>7} {'base p50':>8} {'base p99':>8}"
)


def _line(benchmark: Benchmark, ours: Measurement, theirs: Measurement) -> str:
    ratio = ours.per_second / theirs.per_second
    if benchmark.target is None:
        target, met = "—", ""
    else:
        target, met = "≥" + format(benchmark.target, ".1f"), "met" if ratio >= benchmark.target else "MISSED"
    return (
        f"{benchmark.operation:<40} {ours.per_second:>11.0f} {theirs.per_second:>10.0f} {ratio:>6.2f} "
        f"{target:>5} {met:<6} {ours.p50_ms:>7.2f} {ours.p99_ms:>7.2f} "
        f"{theirs.p50_ms:>8.2f} {theirs.p99_ms:>8.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small counts, one round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side (median shown)")
    parser.add_argument("--only", action="append", default=[], help="run only this benchmark (repeatable)")
    args = parser.parse_args()
    logs.configure("text")
    rounds, scale = (1, 0.05) if args.quick else (args.rounds, 1.0)
    print(f"{platform.node()}: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(HEADER)
    asyncio.run(run(args.only, rounds, scale))


if __name__ == "__main__":
    main()
