"""What each reconciler pass did (the console shows the last one)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, kw_only=True)
class ReconcilerRun:
    started_at: datetime
    finished_at: datetime
    resubmitted: list[str]
    updated: list[str]
    unchanged: int
    needs_operator: list[str]
    errors: list[str]
    events_read: int
    events_applied: int
    events_retried: int
    expired: list[str]
    """Held charges canceled because they waited too long for an approval."""
    attention: list[str]
    """Successes the provider does not show as paid, flagged for an operator."""


async def record(connection: asyncpg.Connection, run: ReconcilerRun) -> None:
    await connection.execute(
        """
        INSERT INTO reconciler_runs (started_at, finished_at, resubmitted, updated, unchanged, needs_operator, errors,
                                     events_read, events_applied, events_retried, expired, attention)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
        """,
        run.started_at,
        run.finished_at,
        run.resubmitted,
        run.updated,
        run.unchanged,
        run.needs_operator,
        run.errors,
        run.events_read,
        run.events_applied,
        run.events_retried,
        run.expired,
        run.attention,
    )


async def last(connection: asyncpg.Connection) -> ReconcilerRun | None:
    row = await connection.fetchrow(
        """
        SELECT started_at, finished_at, resubmitted, updated, unchanged, needs_operator, errors, events_read,
               events_applied, events_retried, expired, attention
          FROM reconciler_runs ORDER BY id DESC LIMIT 1
        """
    )
    return ReconcilerRun(**dict(row)) if row else None


async def last_with_fixes(connection: asyncpg.Connection) -> ReconcilerRun | None:
    """The newest run that changed something (resubmitted, updated, applied or retried)."""
    row = await connection.fetchrow(
        """
        SELECT started_at, finished_at, resubmitted, updated, unchanged, needs_operator, errors, events_read,
               events_applied, events_retried, expired, attention
          FROM reconciler_runs
         WHERE cardinality(resubmitted) > 0 OR cardinality(updated) > 0 OR events_applied > 0 OR events_retried > 0
            OR cardinality(expired) > 0 OR cardinality(attention) > 0
         ORDER BY id DESC LIMIT 1
        """
    )
    return ReconcilerRun(**dict(row)) if row else None


async def forget_old(connection: asyncpg.Connection, keep_days: int) -> None:
    """Runs older than this leave, except the last one that fixed something."""
    await connection.execute(
        """
        DELETE FROM reconciler_runs
         WHERE finished_at < now() - make_interval(days => $1)
           AND id <> coalesce((SELECT max(id) FROM reconciler_runs
                                WHERE cardinality(resubmitted) > 0 OR cardinality(updated) > 0
                                   OR events_applied > 0 OR events_retried > 0), 0)
        """,
        keep_days,
    )
