"""Pooled connections are handed on without asyncpg's reset (db/pool.py SessionFreeConnection): that is safe
only while no query leaves session state on one. This keeps it so, by reading every SQL string in the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|LISTEN|SET|DECLARE|DO)\b")  # the code writes SQL in capitals
SESSION_STATE = re.compile(r"pg_advisory_lock\(|pg_try_advisory_lock\(|\A\s*LISTEN\b|\A\s*SET (?!LOCAL\b)|WITH HOLD")
OWN_CONNECTION = {"db/migrate.py"}  # the migrations run on a direct connection of their own, closed after


def sql_strings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value)
    ]


def test_no_query_leaves_session_state_on_a_pooled_connection() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {query.strip()[:80]}"
        for folder in ("server", "db", "tools", "webapp")
        for path in ROOT.glob(f"{folder}/**/*.py")
        if str(path.relative_to(ROOT)) not in OWN_CONNECTION
        for query in sql_strings(path)
        if SESSION_STATE.search(query)
    ]
    assert offenders == []


def test_the_check_would_see_session_state() -> None:
    assert SESSION_STATE.search("SELECT pg_advisory_lock($1)")
    assert SESSION_STATE.search("SET statement_timeout = 0")
    assert not SESSION_STATE.search("SET LOCAL statement_timeout = 0")
    assert not SESSION_STATE.search("SELECT pg_advisory_xact_lock($1)")
