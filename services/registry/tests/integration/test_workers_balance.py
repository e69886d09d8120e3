"""`mlplane serve registry --workers 2` splits a burst of keep-alive connections evenly
between its workers (`mlplane_runtime.platform.balance`): without it, the worker
that woke first took most of a burst and stayed the busy one."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
from mlplane_runtime.db import Database
from mlplane_testing.identity import TEST_IDENTITY_SECRET

START_S = 240.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_a_burst_of_connections_is_split_evenly_between_two_workers(
    database_url: str, registry_database: Database, tmp_path: Path
) -> None:
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MLPLANE_")}
    env |= {
        "MLPLANE_DATABASE_URL": database_url,
        "MLPLANE_HTTP_PORT": str(port),
        "MLPLANE_DATA_DIR": str(tmp_path / "data"),
        "MLPLANE_IDENTITY_SECRET": TEST_IDENTITY_SECRET,
        "MLPLANE_REGISTRY_TEAM_ARTIFACT_LOCATIONS": json.dumps({"t": ["s3://models/"]}),
        "MLPLANE_LOG_LEVEL": "WARNING",
    }
    schema = f"t_{os.urandom(5).hex()}"
    launcher = (
        "import sys; from mlplane_registry import main; "
        f"main.plugin = main.make_plugin('registry', {schema!r}); "
        "from mlplane_sdk.cli import main as cli; sys.argv = ['mlplane'] + sys.argv[1:]; cli()"
    )
    server = await asyncio.create_subprocess_exec(
        *[sys.executable, "-c", launcher, "serve", "registry", "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(START_S):
            while True:
                assert server.returncode is None, "mlplane serve exited"
                try:
                    async with httpx.AsyncClient() as probe:
                        if (await probe.get(f"http://127.0.0.1:{port}/healthz")).is_success:
                            break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        workers = psutil.Process(server.pid).children()
        assert len(workers) == 2
        # Sixteen connections opened at once and kept open, as a client pool does.
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        async with httpx.AsyncClient(limits=limits) as pool:
            answers = await asyncio.gather(
                *(pool.get(f"http://127.0.0.1:{port}/healthz") for _ in range(16))
            )
            assert all(answer.is_success for answer in answers)
            held = sorted(_established(worker, port) for worker in workers)
        assert sum(held) == 16, held
        assert held[0] >= 7, f"connections per worker: {held}"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(60):
                await server.wait()
        except TimeoutError:
            server.kill()
            await server.wait()
        await registry_database.drop_schema(schema)
    assert server.returncode == 0


def _established(process: psutil.Process, port: int) -> int:
    return sum(
        1
        for connection in process.net_connections("tcp")
        if connection.status == psutil.CONN_ESTABLISHED
        and connection.laddr
        and connection.laddr.port == port
    )
