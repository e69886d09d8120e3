"""One Trivy process: started without a shell, bounded in time, killed with its whole group.

Trivy is a CPU-heavy child process; the event loop only waits on its pipes, so a
scan never blocks other work of the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import TrivyFailed, TrivyTimedOut

# Trivy's log is short, but a debug run could be long: keep only its end for errors.
STDERR_TAIL_BYTES = 8192
CAUSE_MAX_CHARS = 1000
_READ_CHUNK = 65536


class ProcessObserver(Protocol):
    """Told when each Trivy process starts and ends (metrics, tests of the concurrency limit)."""

    def started(self, *, pid: int, subcommand: str, target: str) -> None: ...

    def finished(
        self, *, pid: int, subcommand: str, target: str, exit_code: int | None, seconds: float
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class TrivyOutput:
    """What a Trivy process that exited 0 printed: the report, and the end of its log."""

    stdout: bytes
    stderr_tail: str


def fatal_cause(stderr: str) -> str:
    """Trivy's own reason for failing, on one line: its last FATAL entry and what follows it."""
    lines = stderr.splitlines()
    start = max((i for i, line in enumerate(lines) if "\tFATAL\t" in line), default=None)
    if start is None:
        last = next((line.strip() for line in reversed(lines) if line.strip()), "")
        return last[:CAUSE_MAX_CHARS] or "no message from trivy"
    first = lines[start].split("\tFATAL\t", 1)[1]
    first = first.removeprefix("Fatal error").strip()
    rest = (line.strip() for line in lines[start + 1 :])
    return " ".join([first, *(line for line in rest if line)])[:CAUSE_MAX_CHARS]


async def _read_all(stream: asyncio.StreamReader) -> bytes:
    return await stream.read()


async def _read_tail(stream: asyncio.StreamReader) -> bytes:
    kept = bytearray()
    while chunk := await stream.read(_READ_CHUNK):
        kept += chunk
        if len(kept) > STDERR_TAIL_BYTES:
            del kept[:-STDERR_TAIL_BYTES]
    return bytes(kept)


def _kill_group(process: asyncio.subprocess.Process) -> None:
    # The child leads its own session, so its group id is its pid: this reaches
    # anything Trivy started too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def run_trivy(
    binary: Path,
    arguments: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout_s: float,
    target: str,
    observer: ProcessObserver | None = None,
) -> TrivyOutput:
    """Run `binary arguments...` and return its output when it exits 0.

    Raises TrivyFailed (exit code, Trivy's cause, log tail) on a non-zero exit and
    TrivyTimedOut after `timeout_s`; on a timeout or a cancellation the process
    group is killed and reaped before the error propagates.
    """
    subcommand = arguments[0] if arguments else ""
    started_at = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        str(binary),
        *arguments,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        start_new_session=True,
    )
    if observer is not None:
        observer.started(pid=process.pid, subcommand=subcommand, target=target)
    assert process.stdout is not None
    assert process.stderr is not None
    exit_code: int | None = None
    try:
        async with asyncio.timeout(timeout_s):
            stdout, stderr, exit_code = await asyncio.gather(
                _read_all(process.stdout), _read_tail(process.stderr), process.wait()
            )
    except TimeoutError:
        _kill_group(process)
        await process.wait()
        raise TrivyTimedOut(target=target, timeout_s=timeout_s) from None
    except BaseException:
        _kill_group(process)
        await asyncio.shield(process.wait())
        raise
    finally:
        if observer is not None:
            observer.finished(
                pid=process.pid,
                subcommand=subcommand,
                target=target,
                exit_code=exit_code,
                seconds=time.monotonic() - started_at,
            )
    stderr_text = stderr.decode(errors="replace")
    if exit_code is None or exit_code != 0:
        raise TrivyFailed(
            target=target,
            exit_code=-1 if exit_code is None else exit_code,
            cause=fatal_cause(stderr_text),
            stderr_tail=stderr_text,
        )
    return TrivyOutput(stdout=stdout, stderr_tail=stderr_text)
