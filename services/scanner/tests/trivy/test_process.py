"""One Trivy process: exit codes, Trivy's fatal message, time limits that kill the whole group.

Stand-in executables (small shell scripts) take Trivy's place here, to make a
process that hangs or starts a child; the real Trivy runs in the other files.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from mlplane_scanner.trivy import TrivyFailed, TrivyTimedOut
from mlplane_scanner.trivy.process import STDERR_TAIL_BYTES, fatal_cause, run_trivy

from .observer import eventually_gone

FATAL_LOG = (
    "2026-11-26T10:57:41Z\tINFO\t[vuln] Vulnerability scanning is enabled\n"
    "2026-11-26T10:57:41Z\tFATAL\tFatal error\trun error: image scan error: unable to find "
    'the specified image "r/x:1" in ["remote"]: 1 error occurred:\n'
    "\t* remote error: GET http://r/v2/x/manifests/1: MANIFEST_UNKNOWN: manifest unknown\n"
    "\n\n"
)


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake-trivy"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


class TestFatalCause:
    def test_the_fatal_entry_and_its_reasons_make_one_line(self) -> None:
        cause = fatal_cause(FATAL_LOG)

        assert cause.startswith("run error: image scan error: unable to find the specified image")
        assert cause.endswith("MANIFEST_UNKNOWN: manifest unknown")
        assert "\n" not in cause
        assert "INFO" not in cause

    def test_without_a_fatal_entry_the_last_line_is_the_cause(self) -> None:
        assert fatal_cause("one\nsegmentation fault\n\n") == "segmentation fault"

    def test_an_empty_log_says_so(self) -> None:
        assert fatal_cause("") == "no message from trivy"


class TestRunTrivy:
    async def test_output_of_a_successful_run_is_returned(self, tmp_path: Path) -> None:
        binary = _script(tmp_path, 'echo "{\\"args\\": \\"$*\\"}"; echo working >&2\n')

        output = await run_trivy(binary, ["image", "x"], env={}, timeout_s=10, target="x")

        assert output.stdout == b'{"args": "image x"}\n'
        assert output.stderr_tail == "working\n"

    async def test_a_non_zero_exit_names_target_exit_code_and_cause(self, tmp_path: Path) -> None:
        (tmp_path / "log").write_text(FATAL_LOG)
        binary = _script(tmp_path, f"cat {tmp_path / 'log'} >&2; exit 1\n")

        with pytest.raises(TrivyFailed) as caught:
            await run_trivy(binary, ["image"], env={}, timeout_s=10, target="r/x:1")

        error = caught.value
        assert error.exit_code == 1
        assert error.target == "r/x:1"
        assert "MANIFEST_UNKNOWN" in error.cause
        assert error.detail.startswith("trivy failed on r/x:1 (exit 1): run error")
        assert error.stderr_tail == FATAL_LOG

    async def test_only_the_tail_of_a_long_log_is_kept(self, tmp_path: Path) -> None:
        binary = _script(tmp_path, "head -c 200000 /dev/zero | tr '\\0' a >&2; echo END >&2\n")

        output = await run_trivy(binary, ["image"], env={}, timeout_s=10, target="x")

        assert len(output.stderr_tail) == STDERR_TAIL_BYTES
        assert output.stderr_tail.endswith("aEND\n")

    async def test_the_environment_is_exactly_what_was_given(self, tmp_path: Path) -> None:
        binary = _script(tmp_path, "env\n")

        output = await run_trivy(
            binary, ["x"], env={"TRIVY_USERNAME": "u", "PATH": "/bin"}, timeout_s=10, target="x"
        )

        lines = set(output.stdout.decode().splitlines())
        assert "TRIVY_USERNAME=u" in lines
        assert not any(line.startswith("HOME=") for line in lines)

    async def test_a_timeout_kills_the_process_and_what_it_started(self, tmp_path: Path) -> None:
        child_pid_file = tmp_path / "child.pid"
        binary = _script(tmp_path, f"sleep 60 &\necho $! > {child_pid_file}\nsleep 60\n")
        seen: list[int] = []

        class Observer:
            def started(self, *, pid: int, subcommand: str, target: str) -> None:
                seen.append(pid)

            def finished(self, **_: object) -> None:
                pass

        started = time.monotonic()
        with pytest.raises(TrivyTimedOut) as caught:
            await run_trivy(
                binary, ["image"], env={}, timeout_s=0.5, target="slow", observer=Observer()
            )

        assert time.monotonic() - started < 5
        assert caught.value.timeout_s == 0.5
        assert "ran past 0.5 s" in caught.value.detail
        assert await eventually_gone(seen[0])
        assert await eventually_gone(int(child_pid_file.read_text()))

    async def test_a_cancelled_run_kills_its_process(self, tmp_path: Path) -> None:
        pid_file = tmp_path / "pid"
        binary = _script(tmp_path, f"echo $$ > {pid_file}\nsleep 60\n")

        task = asyncio.create_task(run_trivy(binary, ["x"], env={}, timeout_s=60, target="x"))
        deadline = time.monotonic() + 5
        while not pid_file.exists() or not pid_file.read_text().strip():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        assert await eventually_gone(int(pid_file.read_text()))
