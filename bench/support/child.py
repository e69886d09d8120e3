"""Start a benchmark's producer process and release it when the consumer is ready."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class ProducerProcess:
    def __init__(self, *args: str) -> None:
        self._args = args
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> ProducerProcess:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.support.producer_process",
            *self._args,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        line = await asyncio.wait_for(self._process.stdout.readline(), 120)
        if line.strip() != b"ready":
            raise RuntimeError(f"producer process did not get ready: {line!r}")
        return self

    def go(self) -> float:
        """Release the producer; returns the start time (time.perf_counter())."""
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(b"go\n")
        return time.perf_counter()

    async def __aexit__(self, *_: object) -> None:
        assert self._process is not None
        try:
            code = await asyncio.wait_for(self._process.wait(), 120)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
            raise
        if code != 0:
            raise RuntimeError(f"producer process exited with {code}")
