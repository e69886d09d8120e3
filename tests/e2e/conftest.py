"""The platform as `make run` starts it: `mlplane up` in a child process, embedded defaults.

Only two settings differ from a plain `make run`, both for the shared test machine:
the HTTP port (a free one, 8080 may be taken) and the database (a throwaway
database on the machine's PostgreSQL, created here and dropped after, instead of
the embedded PostgreSQL, whose initdb adds a few seconds). No AMQP URL,
no S3, no OCI registry, no Trivy database: the in-process bus, artifacts and OCI
layouts on the local disk, exactly what a user gets.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import httpx
import psycopg2
import pytest
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[2]
MLPLANE = REPO / ".venv" / "bin" / "mlplane"
READY_WITHIN_S = 60.0
STOPPED_WITHIN_S = 30.0
LOG_TAIL_LINES = 40


@dataclass(frozen=True)
class RunningPlatform:
    """A started `mlplane up`: where it answers, its files, and what it logged."""

    url: str
    workdir: Path
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes]

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The platform's last log lines (stderr, JSON), for failure messages.

        Access-log lines are left out: the tests' own polling would fill the tail.
        """
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        kept = [line for line in text.splitlines() if '"logger": "mlplane.access"' not in line]
        return "\n".join(line[:600] for line in kept[-lines:]) or "(nothing logged)"


def _server_url() -> str:
    # The same server the rest of the suite uses (README: MLPLANE_TEST_DATABASE_URL).
    return os.environ.get(
        "MLPLANE_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )


def _admin(sql: str) -> None:
    url = make_url(_server_url())
    connection = psycopg2.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        dbname=url.database or "postgres",
    )
    try:
        # CREATE/DROP DATABASE cannot run inside a transaction block.
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def platform_database() -> Iterator[str]:
    """A database of its own for one `mlplane up`, dropped after (whatever is still connected)."""
    with throwaway_database() as url:
        yield url


@contextmanager
def throwaway_database() -> Iterator[str]:
    """The URL of a new, empty database on the test server, dropped when the block ends."""
    name = f"e2e_{uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(_server_url()).set(drivername="postgresql", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _platform_environment(
    database_url: str, port: int, extra: dict[str, str] | None = None
) -> dict[str, str]:
    # Nothing of the caller's MLPLANE_* may leak in (an AMQP URL, a registry URL, ...),
    # nor TRIVY_* (a DB repository would change every verdict): the point is the
    # embedded defaults.
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLANE_", "TRIVY_"))}
    environment.update(
        MLPLANE_DATABASE_URL=database_url,
        MLPLANE_HTTP_PORT=str(port),
        PYTHONUNBUFFERED="1",
    )
    environment.update(extra or {})
    return environment


def _wait_ready(platform: RunningPlatform) -> None:
    deadline = time.monotonic() + READY_WITHIN_S
    last = "no answer yet"
    with httpx.Client(base_url=platform.url, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if platform.process.poll() is not None:
                pytest.fail(
                    f"mlplane up exited with {platform.process.returncode} before it was "
                    f"ready:\n{platform.log_tail()}"
                )
            try:
                answer = client.get("/readyz")
                if answer.status_code == 200:
                    return
                last = f"{answer.status_code} {answer.text[:300]}"
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
    pytest.fail(
        f"mlplane up was not ready within {READY_WITHIN_S:g} s (last /readyz: {last}):\n"
        f"{platform.log_tail()}"
    )


def _stop(platform: RunningPlatform) -> None:
    """SIGTERM, as Ctrl+C or a service manager would; the exit must be clean and prompt."""
    process = platform.process
    if process.poll() is not None:
        pytest.fail(
            f"mlplane up died during the test (exit code {process.returncode}):\n"
            f"{platform.log_tail()}"
        )
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    try:
        process.wait(timeout=STOPPED_WITHIN_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOPPED_WITHIN_S)
        pytest.fail(
            f"mlplane up did not stop within {STOPPED_WITHIN_S:g} s of SIGTERM (killed):\n"
            f"{platform.log_tail()}"
        )
    took = time.monotonic() - started
    messages, errors = _log_messages(platform.log)
    assert process.returncode == 0, (
        f"mlplane up exited with {process.returncode} after SIGTERM:\n{platform.log_tail()}"
    )
    assert "platform stopped" in messages, (
        f"no orderly stop logged after SIGTERM ({took:.1f} s):\n{platform.log_tail()}"
    )
    assert not errors, "mlplane up logged errors:\n" + "\n".join(errors)


def _log_messages(log: Path) -> tuple[list[str], list[str]]:
    """Every JSON log line's message, and the ERROR/CRITICAL lines in full."""
    messages: list[str] = []
    errors: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            # A line that is not JSON is a traceback or a crash message, not a log record.
            errors.append(line[:600])
            continue
        messages.append(str(record.get("message")))
        if record.get("level") in ("ERROR", "CRITICAL"):
            errors.append(line[:600])
    return messages, errors


@pytest.fixture(scope="module")
def platform(
    platform_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    """`mlplane up` on embedded defaults, ready; stopped with SIGTERM (and checked) after."""
    yield from running_platform(platform_database, tmp_path_factory)


def running_platform(
    platform_database: str,
    tmp_path_factory: pytest.TempPathFactory,
    extra_environment: dict[str, str] | None = None,
) -> Iterator[RunningPlatform]:
    """What `platform` yields, with `extra_environment` added (e.g. an OTLP endpoint)."""
    workdir = tmp_path_factory.mktemp("mlplane-up")
    port = _free_port()
    log = workdir / "mlplane.log"
    with (workdir / "stdout.txt").open("wb") as stdout, log.open("wb") as stderr:
        # The working directory is fresh and MLPLANE_DATA_DIR unset: the data lands in
        # `.data` beside it, the relative default `make run` uses.
        process = subprocess.Popen(
            [str(MLPLANE), "up"],
            cwd=workdir,
            env=_platform_environment(platform_database, port, extra_environment),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    running = RunningPlatform(
        url=f"http://127.0.0.1:{port}",
        workdir=workdir,
        data_dir=workdir / ".data",
        log=log,
        process=process,
    )
    try:
        _wait_ready(running)
        yield running
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=STOPPED_WITHIN_S)
        raise
    _stop(running)
