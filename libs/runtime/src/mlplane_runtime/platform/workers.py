"""Several worker processes serving one listening socket (`mlplane serve --workers N`).

A pre-fork supervisor: the parent binds and listens once, then forks N children
that each run a whole platform (its own event loop, database pool, relays,
consumers and job workers) accepting on the inherited socket; the kernel hands each
new connection to one of the processes waiting in accept, and the workers even out
their shares of open connections among themselves (`balance`). What the platform runs
besides HTTP is built for replicas: outbox relays and job workers claim rows with
`FOR UPDATE SKIP LOCKED`, RabbitMQ consumers on one queue are competing consumers,
the in-process bus leases its rows the same way, and migrations take an advisory
lock. So N workers in one host are N replicas that share a port.

The parent forks before it has an event loop or a thread (the caller must not have
started either), so each child starts clean. It supervises: a child that dies after
it served is started again; a child that dies before it ever served (a database
that does not answer, bad settings) stops the others, and its exit code is the
parent's, rather than a restart loop. SIGTERM or SIGINT to the parent is passed to
every child, which stops as `serve_platform` does (in-flight requests finish); the
parent returns once all have exited. (Ctrl+C at a terminal reaches the children
too, so they see two signals and stop without waiting for idle keep-alive
connections.)
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

from mlplane_runtime.platform.balance import ConnectionBalancer

_log = logging.getLogger("mlplane.platform")

LISTEN_BACKLOG = 2048
EXIT_STARTUP_FAILED = 1

ServeWorker = Callable[[socket.socket, int, Callable[[], None], ConnectionBalancer], int]
"""`(listening socket, worker index, ready, balancer)`: runs one worker to its end in
the child process and returns its exit code; it calls `ready()` once it serves
requests, and serves with `balancer` (seated as this worker) to keep the workers'
shares of connections even."""


@dataclass
class _Child:
    index: int
    pid: int
    ready_fd: int
    """The read end of a pipe the child writes one byte to once it serves."""

    def was_ready(self) -> bool:
        os.set_blocking(self.ready_fd, False)
        try:
            return bool(os.read(self.ready_fd, 1))
        except BlockingIOError:
            return False

    def close(self) -> None:
        os.close(self.ready_fd)


def run_workers(sock: socket.socket, count: int, serve: ServeWorker) -> int:
    """Serve `sock` from `count` forked children until a signal stops them all.

    Returns 0 after a clean stop, or the exit code of a child that failed to start.
    Must be called in the main thread of a process with no event loop or thread yet.
    """
    if count < 1:
        raise ValueError("at least one worker")
    sock.listen(LISTEN_BACKLOG)
    balancer = ConnectionBalancer(count)
    # What the parent imported is shared with the children until written to; kept out
    # of the collector's passes, its objects' pages are not copied by a collection.
    gc.collect()
    gc.freeze()
    children: dict[int, _Child] = {}
    stopping: list[bool] = [False]

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not stopping[0]:
            _log.info("received %s, stopping %d worker(s)", signal.Signals(signum).name, count)
        stopping[0] = True
        for child in children.values():
            _kill(child.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    exit_code = 0
    try:
        for index in range(count):
            _start(children, sock, index, serve, balancer, previous, stopping[0])
        while children:
            pid, status = os.wait()
            if pid not in children:
                continue
            child = children.pop(pid)
            balancer.vacate(child.index)
            code = os.waitstatus_to_exitcode(status)
            ready = child.was_ready()
            child.close()
            if stopping[0]:
                continue
            if not ready:
                _log.error(
                    "worker %d exited with %d before it served; stopping the others",
                    child.index,
                    code,
                )
                exit_code = code or EXIT_STARTUP_FAILED
                on_signal(signal.SIGTERM, None)
                continue
            _log.warning(
                "worker %d (pid %d) exited with %d; starting it again", child.index, pid, code
            )
            _start(children, sock, child.index, serve, balancer, previous, stopping[0])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    return exit_code


def _start(
    children: dict[int, _Child],
    sock: socket.socket,
    index: int,
    serve: ServeWorker,
    balancer: ConnectionBalancer,
    parent_handlers: Mapping[signal.Signals, Any],
    stopping: bool,
) -> None:
    """Fork worker `index` into `children`, with SIGINT and SIGTERM held meanwhile: a
    signal then finds the child in `children`, and never runs the parent's handler in
    the child before it has its own."""
    if stopping:
        return
    held = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        child = _fork(sock, index, serve, balancer, parent_handlers)
        children[child.pid] = child
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def _fork(
    sock: socket.socket,
    index: int,
    serve: ServeWorker,
    balancer: ConnectionBalancer,
    parent_handlers: Mapping[signal.Signals, Any],
) -> _Child:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid != 0:
        os.close(write_fd)
        return _Child(index, pid, read_fd)
    # The child: never returns into the parent's code.
    code = 1
    try:
        os.close(read_fd)
        for sig, handler in parent_handlers.items():
            signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})

        def ready() -> None:
            with contextlib.suppress(OSError):
                os.write(write_fd, b"r")

        balancer.seat(index)
        code = serve(sock, index, ready, balancer)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        _log.exception("worker %d failed", index)
    finally:
        logging.shutdown()
        os._exit(code)


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
