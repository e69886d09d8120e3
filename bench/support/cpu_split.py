"""Where this machine's CPU went while one operation was measured: the server's process
tree, PostgreSQL, the load generator (this process), and everything else (others
sharing the machine). On 2 cores shared by all four, this names what limited a figure."""

from __future__ import annotations

import time
from collections.abc import Set

import psutil

GROUPS = ("server", "postgres", "load_generator", "others")


class CpuSplit:
    """`start()` then `cores()`: cores each group used on average in between."""

    def __init__(self, server_root: int) -> None:
        self._server_root = server_root
        self._began = 0.0
        self._before: dict[int, tuple[str, float]] = {}

    def start(self) -> None:
        self._before = self._sample(self._server_pids())
        self._began = time.perf_counter()

    def cores(self) -> dict[str, float]:
        """Cores used per group since `start()` (processes that ended meanwhile are not
        counted: their last CPU time is not readable)."""
        after = self._sample(self._server_pids())
        seconds = time.perf_counter() - self._began
        used = dict.fromkeys(GROUPS, 0.0)
        for pid, (group, cpu) in after.items():
            earlier = self._before.get(pid)
            used[group] += cpu - (earlier[1] if earlier is not None else 0.0)
        return {group: round(value / seconds, 2) for group, value in used.items()}

    def _server_pids(self) -> Set[int]:
        try:
            root = psutil.Process(self._server_root)
            return {root.pid, *(child.pid for child in root.children(recursive=True))}
        except psutil.Error:
            return set()

    @staticmethod
    def _sample(server: Set[int]) -> dict[int, tuple[str, float]]:
        me = psutil.Process().pid
        found: dict[int, tuple[str, float]] = {}
        for proc in psutil.process_iter(["name", "cpu_times"]):
            times = proc.info["cpu_times"]
            if times is None:
                continue
            name = proc.info["name"] or ""
            if proc.pid in server:
                group = "server"
            elif proc.pid == me:
                group = "load_generator"
            elif name.startswith("postgres"):
                group = "postgres"
            else:
                group = "others"
            found[proc.pid] = (group, times.user + times.system)
        return found
