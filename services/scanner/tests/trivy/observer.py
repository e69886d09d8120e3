"""A ProcessObserver for tests (when each Trivy process ran, and for what), and a wait
for a process to be gone."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class RunRecord:
    pid: int
    subcommand: str
    target: str
    started: float
    ended: float | None = None
    exit_code: int | None = None


@dataclass
class RecordingObserver:
    runs: list[RunRecord] = field(default_factory=list)

    def started(self, *, pid: int, subcommand: str, target: str) -> None:
        self.runs.append(RunRecord(pid, subcommand, target, time.monotonic()))

    def finished(
        self, *, pid: int, subcommand: str, target: str, exit_code: int | None, seconds: float
    ) -> None:
        record = next(run for run in self.runs if run.pid == pid and run.ended is None)
        record.ended = time.monotonic()
        record.exit_code = exit_code

    def scans(self) -> list[RunRecord]:
        return [run for run in self.runs if not run.target.startswith("vulnerability database")]

    def downloads(self) -> list[RunRecord]:
        return [run for run in self.runs if run.target.startswith("vulnerability database")]

    def most_at_once(self) -> int:
        """The largest number of processes that ran at the same moment."""
        edges = [(run.started, 1) for run in self.runs]
        edges += [(run.ended if run.ended is not None else float("inf"), -1) for run in self.runs]
        running = peak = 0
        # At equal times an end sorts before a start: touching is not overlapping.
        for _, change in sorted(edges):
            running += change
            peak = max(peak, running)
        return peak


def _gone(pid: int) -> bool:
    """True once `pid` has exited (reaped, or a zombie waiting for its parent)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def eventually_gone(pid: int, within_s: float = 5.0) -> bool:
    """Whether process `pid` is gone within `within_s` (polled, bounded)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        await asyncio.sleep(0.05)
    return False
