"""`mlplane serve registry --workers 2` splits a burst of keep-alive connections evenly
between its workers (`mlplane_runtime.platform.balance`): without it, the worker
that woke first took most of a burst and stayed the busy one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import psutil
from mlplane_runtime.db import Database

from .hosting import serving_registry


async def test_a_burst_of_connections_is_split_evenly_between_two_workers(
    database_url: str, registry_database: Database, tmp_path: Path
) -> None:
    async with serving_registry(database_url, registry_database, tmp_path, "t", 2) as served:
        port = served.port
        workers = psutil.Process(served.process.pid).children()
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
    assert served.process.returncode == 0, served.output[-3000:]


def _established(process: psutil.Process, port: int) -> int:
    return sum(
        1
        for connection in process.net_connections("tcp")
        if connection.status == psutil.CONN_ESTABLISHED
        and connection.laddr
        and connection.laddr.port == port
    )
