"""A running platform for the example CI script: `mlplane up` in a child process, as `make run`.

Embedded defaults (in-process bus, artifacts on the local disk, whose presigned URLs
the registry serves itself) on a throwaway database of the suite's PostgreSQL and a
free port; stopped with SIGTERM after the module, which must exit 0.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import httpx
import psycopg2
import pytest
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[2]
MLPLANE = REPO / ".venv" / "bin" / "mlplane"
READY_WITHIN_S = 90.0


@dataclass(frozen=True)
class Platform:
    url: str
    data_dir: Path
    log: Path

    def admin_key(self) -> str:
        return (self.data_dir / "gateway" / "initial-admin-key").read_text().strip()


def _admin(sql: str) -> None:
    url = make_url(
        os.environ.get(
            "MLPLANE_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        )
    )
    connection = psycopg2.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        dbname=url.database or "postgres",
    )
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    name = f"ci_{uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    server = make_url(
        os.environ.get(
            "MLPLANE_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        )
    )
    database_url = server.set(drivername="postgresql", database=name).render_as_string(
        hide_password=False
    )
    workdir = tmp_path_factory.mktemp("mlplane-up")
    port = _free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLANE_", "TRIVY_"))}
    environment |= {
        "MLPLANE_DATABASE_URL": database_url,
        "MLPLANE_HTTP_PORT": str(port),
        "MLPLANE_DATA_DIR": str(workdir / ".data"),
        "PYTHONUNBUFFERED": "1",
    }
    log = workdir / "mlplane.log"
    try:
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(MLPLANE), "up"], cwd=workdir, env=environment, stdout=out, stderr=out
            )
        running = Platform(f"http://127.0.0.1:{port}", workdir / ".data", log)
        try:
            deadline = time.monotonic() + READY_WITHIN_S
            while True:
                assert process.poll() is None, log.read_text()[-4000:]
                try:
                    if httpx.get(f"{running.url}/readyz", timeout=5.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text()[-4000:]
                time.sleep(0.3)
            yield running
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        assert process.returncode == 0, log.read_text()[-4000:]
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
