"""A real MLflow tracking server for tests: `mlflow server` started here, stopped after.

SQLite backend and artifacts served from a directory (`--artifacts-destination`, so
clients log through the server's artifact proxy and their models get
`mlflow-artifacts:/` URIs), on a free 127.0.0.1 port. The `mlflow` command is the one
installed beside the running Python (the workspace's lock pins MLflow). Starting takes
a few seconds: use it at module scope.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

READY_WITHIN_S = 90.0
STOP_WITHIN_S = 20.0


@dataclass(frozen=True)
class MlflowServer:
    """Where the tracking server answers, and the directory its artifacts are kept in
    (`mlflow-artifacts:/<path>` is `artifacts / <path>`)."""

    url: str
    artifacts: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def mlflow_server(workdir: Path) -> Iterator[MlflowServer]:
    """`mlflow server` with its database, artifacts and log in `workdir`, ready; stopped
    (its whole process group: gunicorn or uvicorn workers) when the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    artifacts = workdir / "artifacts"
    log_path = workdir / "mlflow.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    environment["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{workdir / 'mlflow.db'}",
        "--artifacts-destination",
        str(artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_WITHIN_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server not ready within {READY_WITHIN_S:g} s")
            time.sleep(0.3)
        yield MlflowServer(url, artifacts)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_WITHIN_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_WITHIN_S)
