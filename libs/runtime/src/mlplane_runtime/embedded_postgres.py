"""An embedded PostgreSQL server for `mlplane up` when no database URL is configured.

The `pgserver` package ships the server binaries. The cluster lives in
`<data_dir>/postgres` and survives restarts; it listens on a unix socket only (no
TCP port to collide with). One mlplane process owns a data directory at a time
(an advisory lock on `<data_dir>/postgres.lock`), so a server found running on it
can only be a leftover of a killed run, and is adopted.
"""

from __future__ import annotations

import fcntl
import logging
import subprocess
import time
import warnings
from pathlib import Path
from typing import IO, Any

import psutil
from sqlalchemy import URL

from mlplane_runtime.errors import Unavailable

_log = logging.getLogger("mlplane.embedded_postgres")

DATABASE = "postgres"
USER = "postgres"
_START_ATTEMPTS = 5
_STALE_WAIT_S = 10.0
_STOP_TIMEOUT_S = 60
# postmaster.pid: pid, pgdata, start time, port, socket dir, host, shared memory, status.
_PID_FILE_LINES = 8


class EmbeddedPostgresFailed(Unavailable):
    """The embedded PostgreSQL could not be started or its data directory is in use."""

    title = "Embedded PostgreSQL unavailable"


class EmbeddedPostgres:
    """The embedded server of one data directory: `start()` it, use `url`, `stop()` it."""

    def __init__(self, data_dir: Path) -> None:
        # Absolute, as pgserver makes it: the postmaster's command line names it so.
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "postgres"
        self._lock_file: IO[str] | None = None
        self._server: Any = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The SQLAlchemy asyncpg URL of the running server (unix socket).

        Raises RuntimeError before `start()`.
        """
        if self._url is None:
            raise RuntimeError("the embedded PostgreSQL is not started")
        return self._url

    def start(self) -> str:
        """Start (or adopt) the server on `<data_dir>/postgres` and return its URL.

        Blocking: call it in a worker thread from async code. Initialises the
        cluster on first use. Raises EmbeddedPostgresFailed when another mlplane
        process holds the data directory or the server does not start.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_data_dir()
        try:
            self._server = self._start_server()
            socket_dir = self._server.get_postmaster_info().socket_dir
            self._url = URL.create(
                "postgresql+asyncpg",
                username=USER,
                database=DATABASE,
                query={"host": str(socket_dir)},
            ).render_as_string(hide_password=False)
        except BaseException:
            self._unlock_data_dir()
            raise
        _log.info("embedded PostgreSQL ready", extra={"pgdata": str(self.pgdata)})
        return self._url

    def stop(self) -> None:
        """Shut the server down (fast mode: sessions end, data is checkpointed).

        Idempotent. Never raises: a failure is logged, the lock released anyway.
        """
        if self._server is None:
            self._unlock_data_dir()
            return
        server, self._server, self._url = self._server, None, None
        try:
            if _live_postmaster(self.pgdata) is not None:
                _pg_ctl(
                    ["-w", "-m", "fast", "-t", str(_STOP_TIMEOUT_S), "stop"],
                    pgdata=self.pgdata,
                    user=server.system_user,
                )
            _log.info("embedded PostgreSQL stopped", extra={"pgdata": str(self.pgdata)})
        except (subprocess.SubprocessError, OSError) as exc:
            _log.error("embedded PostgreSQL did not stop cleanly: %s", exc)
        finally:
            self._unlock_data_dir()

    def _start_server(self) -> Any:
        pgserver = _import_pgserver()
        last_error: BaseException | None = None
        for attempt in range(1, _START_ATTEMPTS + 1):
            _clear_stale_pid_file(self.pgdata)
            try:
                server = pgserver.get_server(self.pgdata, cleanup_mode=None)
                # get_server returns a handle cached per process; after an earlier
                # stop() in this process its server is gone, so make sure it runs.
                server.ensure_postgres_running()
                return server
            except (subprocess.SubprocessError, OSError, AssertionError) as exc:
                # A server killed a moment ago may still hold its shared memory.
                last_error = exc
                _log.warning("embedded PostgreSQL start attempt %d failed: %s", attempt, exc)
                time.sleep(0.5 * attempt)
        raise EmbeddedPostgresFailed(
            f"the embedded PostgreSQL in {self.pgdata} did not start: {last_error}; "
            f"see {self.pgdata / 'log'}"
        )

    def _lock_data_dir(self) -> None:
        lock_file = (self.data_dir / "postgres.lock").open("a")
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.close()
            raise EmbeddedPostgresFailed(
                f"the data directory {self.data_dir} is in use by another mlplane process; "
                "stop it or set MLPLANE_DATA_DIR to another directory"
            ) from None
        self._lock_file = lock_file

    def _unlock_data_dir(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None


def _import_pgserver() -> Any:
    # pgserver computes a runtime directory at import and warns when
    # XDG_RUNTIME_DIR is unset (it falls back to /tmp); that is harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    return pgserver


def _pg_ctl(args: list[str], *, pgdata: Path, user: str | None) -> None:
    pgserver = _import_pgserver()
    pgserver.pg_ctl(args, pgdata=pgdata, user=user, timeout=_STOP_TIMEOUT_S + 10)


def _live_postmaster(pgdata: Path) -> psutil.Process | None:
    """The running postmaster that owns `pgdata`, per its postmaster.pid, or None."""
    pid = _pid_in_file(pgdata / "postmaster.pid")
    if pid is None:
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        if str(pgdata) not in " ".join(process.cmdline()):
            return None
    except psutil.Error:
        return None
    return process


def _pid_in_file(pid_file: Path) -> int | None:
    try:
        first_line = pid_file.read_text().splitlines()[0]
        return int(first_line.strip())
    except (OSError, IndexError, ValueError):
        return None


def _clear_stale_pid_file(pgdata: Path) -> None:
    """Make a postmaster.pid left by a killed server harmless before starting.

    PostgreSQL itself ignores a complete pid file whose process is gone (and then
    checks that no old backend still uses the shared memory), so such a file
    stays. What it and pgserver cannot tell apart is a pid still "alive" as a
    zombie, or reused by an unrelated process: wait a little for a zombie to be
    reaped, then remove the file (backends exit as soon as their postmaster dies).
    pgserver also cannot parse a file cut short by a kill during start-up; such a
    file holds no shared-memory key yet, so removing it loses no safety check.
    The caller holds the data directory's lock, so no other process is starting
    a server on it meanwhile.
    """
    pid_file = pgdata / "postmaster.pid"
    deadline = time.monotonic() + _STALE_WAIT_S
    while pid_file.exists():
        if _live_postmaster(pgdata) is not None:
            _wait_until_ready_or_gone(pgdata, deadline)
            return
        pid = _pid_in_file(pid_file)
        state = _process_state(pid)
        if state == "gone" and _is_complete(pid_file):
            return
        if state == "zombie" and time.monotonic() < deadline:
            time.sleep(0.2)
            continue
        _log.warning("removing stale postmaster.pid (pid %s is not this server)", pid)
        pid_file.unlink(missing_ok=True)
        return


def _process_state(pid: int | None) -> str:
    """`gone`, `zombie` or `other` (alive, so the pid was reused) for `pid`."""
    if pid is None:
        return "gone"
    try:
        status = psutil.Process(pid).status()
    except psutil.Error:
        return "gone"
    return "zombie" if status == psutil.STATUS_ZOMBIE else "other"


def _is_complete(pid_file: Path) -> bool:
    try:
        return len(pid_file.read_text().splitlines()) == _PID_FILE_LINES
    except OSError:
        return False


def _wait_until_ready_or_gone(pgdata: Path, deadline: float) -> None:
    """A leftover server still starting or shutting down: let it settle first."""
    pid_file = pgdata / "postmaster.pid"
    while time.monotonic() < deadline:
        if _live_postmaster(pgdata) is None:
            return
        try:
            lines = pid_file.read_text().splitlines()
        except OSError:
            return
        if len(lines) >= _PID_FILE_LINES and lines[_PID_FILE_LINES - 1].strip() == "ready":
            return
        time.sleep(0.2)
