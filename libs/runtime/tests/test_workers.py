"""The pre-fork supervisor, run in its own process (never forking pytest itself).

Its workers here serve nothing: each records its pid, says it is ready (or not),
and waits for SIGTERM. The supervisor must restart a worker that dies after it was
ready, stop everything when one dies before, and stop all on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

WAIT_S = 60.0

PROGRAM = """
import os, signal, socket, sys
from pathlib import Path
from mlplane_runtime.platform.workers import run_workers

record, mode = Path(sys.argv[1]), sys.argv[2]

def serve(listen, index, ready, balancer):
    (record / f"{index}-{os.getpid()}").write_text("")
    if mode == "fail":
        return 3
    ready()
    while True:
        signal.pause()  # SIGTERM's default action ends it

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sys.exit(run_workers(sock, 2, serve))
"""


def _start(record: Path, mode: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", PROGRAM, str(record), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _pids(record: Path, at_least: int) -> list[int]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = sorted(record.iterdir())
        if len(found) >= at_least:
            return [int(path.name.split("-")[1]) for path in found]
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} workers started: {list(record.iterdir())}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_worker_that_dies_after_serving_is_started_again_and_sigterm_stops_all(
    tmp_path: Path,
) -> None:
    supervisor = _start(tmp_path, "serve")
    try:
        first = _pids(tmp_path, 2)
        os.kill(first[0], signal.SIGKILL)
        everyone = _pids(tmp_path, 3)
        assert len(everyone) == 3
        supervisor.send_signal(signal.SIGTERM)
        output, _ = supervisor.communicate(timeout=WAIT_S)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    assert supervisor.returncode == 0, output.decode(errors="replace")
    assert not [pid for pid in everyone if _alive(pid)]


def test_a_worker_that_dies_before_serving_stops_the_supervisor_with_its_code(
    tmp_path: Path,
) -> None:
    supervisor = _start(tmp_path, "fail")
    try:
        output, _ = supervisor.communicate(timeout=WAIT_S)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    assert supervisor.returncode == 3, output.decode(errors="replace")
    assert b"before it served" in output
