"""The registry benchmark's servers: a throwaway database each, a child process in its own
session, its memory sampled over its whole process tree, and stopped by process group."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import asyncpg
import httpx
import psutil

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
READY_TIMEOUT_S = 180.0
SETTLE_TIMEOUT_S = 120.0
SETTLED_CPU_SHARE = 0.1
STOP_TIMEOUT_S = 15.0


@contextlib.asynccontextmanager
async def throwaway_database(admin_dsn: str, label: str) -> AsyncIterator[str]:
    """A new, empty database named `bench_registry_<label>_<random>`; dropped on exit
    (connections still open are terminated: `WITH (FORCE)`)."""
    name = f"bench_registry_{label}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield name
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _TreeSampler(threading.Thread):
    """Samples the RSS (and CPU time) of a process and all its descendants every 100 ms.

    `peak_rss` is the largest sum over one sample; `peak_rss_excluding` the same sum
    without processes whose command line contains one of `exclude` (and their children).
    `peak_pss` and `peak_pss_excluding` are the same with each process's proportional
    set size: a page shared by k processes counts 1/k in each, so workers forked from
    one parent are not counted once per process for the pages they still share.
    Every process ever seen is remembered, so the stop can reach one that left the group.
    """

    def __init__(self, pid: int, exclude: Sequence[str]) -> None:
        super().__init__(daemon=True)
        self._root = psutil.Process(pid)
        self._exclude = tuple(exclude)
        self._stop_event = threading.Event()
        self.seen: dict[int, psutil.Process] = {pid: self._root}
        self.peak_rss = 0
        self.peak_rss_excluding = 0
        self.peak_pss = 0
        self.peak_pss_excluding = 0
        self._cpu: dict[int, float] = {}
        # The main thread samples too (cpu_seconds): one sample at a time.
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(0.1)

    def sample(self) -> None:
        with self._lock:
            self._sample()

    def _sample(self) -> None:
        try:
            tree = [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return
        total = kept = total_pss = kept_pss = 0
        excluded: set[int] = set()
        for proc in tree:
            self.seen.setdefault(proc.pid, proc)
            try:
                memory = proc.memory_full_info()
                rss, pss = memory.rss, memory.pss
                times = proc.cpu_times()
                if self._exclude and proc.ppid() not in excluded:
                    line = " ".join(proc.cmdline())
                    if any(marker in line for marker in self._exclude):
                        excluded.add(proc.pid)
                elif proc.ppid() in excluded:
                    excluded.add(proc.pid)
            except psutil.Error:
                continue
            self._cpu[proc.pid] = times.user + times.system
            total += rss
            total_pss += pss
            if proc.pid not in excluded:
                kept += rss
                kept_pss += pss
        self.peak_rss = max(self.peak_rss, total)
        self.peak_rss_excluding = max(self.peak_rss_excluding, kept)
        self.peak_pss = max(self.peak_pss, total_pss)
        self.peak_pss_excluding = max(self.peak_pss_excluding, kept_pss)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the tree has used so far, by the latest samples."""
        with self._lock:
            self._sample()
            return sum(self._cpu.values())

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


class ServerProcess:
    """A server started as `argv` in its own session (so its process group holds every
    process it starts), answering 200 on `ready_url` once started.

    Output goes to `log_path`. On exit the whole group gets SIGTERM, then SIGKILL after
    15 s; any process of its tree that left the group is killed by its pid.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        ready_url: str,
        exclude_from_memory: Sequence[str] = (),
    ) -> None:
        self.name = name
        self._argv = list(argv)
        self._env = dict(env)
        self._cwd = cwd
        self._ready_url = ready_url
        self._exclude = exclude_from_memory
        self.log_path = cwd / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._sampler: _TreeSampler | None = None
        self.started_s = 0.0

    def start(self) -> None:
        """Start the process (do not wait for it to answer)."""
        self._began = time.perf_counter()
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self._argv,
                env=self._env,
                cwd=self._cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._sampler = _TreeSampler(self._process.pid, self._exclude)
        self._sampler.start()

    async def wait_ready(self) -> None:
        """Return once `ready_url` answers 200; raise RuntimeError (with the log's tail)
        if the process exits or does not answer within 180 s."""
        assert self._process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self._ready_url)).status_code == 200:
                        self.started_s = round(time.perf_counter() - self._began, 1)
                        return
                await asyncio.sleep(0.25)
        raise RuntimeError(f"{self.name} did not get ready in time:\n{self.log_tail()}")

    async def settle(self) -> float:
        """Wait until the process tree uses under a tenth of a core over one second
        (MLflow keeps starting helpers after it answers); at most 120 s. Returns the
        seconds waited."""
        began = time.perf_counter()
        before = self.cpu_seconds()
        while time.perf_counter() - began < SETTLE_TIMEOUT_S:
            await asyncio.sleep(1.0)
            now = self.cpu_seconds()
            if now - before < SETTLED_CPU_SHARE:
                break
            before = now
        return round(time.perf_counter() - began, 1)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    @property
    def pid(self) -> int:
        """The server's root process (RuntimeError before `start()`)."""
        if self._process is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._process.pid

    def cpu_seconds(self) -> float:
        assert self._sampler is not None
        return self._sampler.cpu_seconds()

    @property
    def peak_rss_mb(self) -> float:
        assert self._sampler is not None
        return round(self._sampler.peak_rss / 2**20, 1)

    @property
    def peak_rss_excluding_mb(self) -> float:
        assert self._sampler is not None
        return round(self._sampler.peak_rss_excluding / 2**20, 1)

    @property
    def peak_pss_mb(self) -> float:
        assert self._sampler is not None
        return round(self._sampler.peak_pss / 2**20, 1)

    @property
    def peak_pss_excluding_mb(self) -> float:
        assert self._sampler is not None
        return round(self._sampler.peak_pss_excluding / 2**20, 1)

    def stop(self) -> None:
        """Stop the whole process group (SIGTERM, then SIGKILL), then any straggler by pid."""
        if self._process is None:
            return
        sampler = self._sampler
        if sampler is not None:
            sampler.stop()
            sampler.sample()
        pgid = self._process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(STOP_TIMEOUT_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self._process.wait()
        if sampler is not None:
            for proc in sampler.seen.values():
                # is_running() compares the start time too, so a reused pid is left alone.
                with contextlib.suppress(psutil.Error):
                    if proc.is_running():
                        proc.kill()
        self._process = None
