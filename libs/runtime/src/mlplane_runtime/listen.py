"""LISTEN with reconnect: a dedicated PostgreSQL connection that calls back on NOTIFY.

    listener = NotificationListener(
        database, ["mlplane_outbox_builder"], on_notify=lambda channel, payload: wake(),
        on_connection=lambda up: ..., name="outbox relay of builder",
    )
    listener.start()        # on the running loop; or `await listener.run()` in a task
    ...
    await listener.aclose()

The connection is asyncpg's own (a pooled SQLAlchemy connection cannot hold a
LISTEN across checkouts). It is LISTENing on every channel before `on_connection(True)`
is called, so from that call on no NOTIFY is missed; `on_connection(False)` comes
as soon as the connection is known lost (a FIN, or a heartbeat `SELECT 1` that fails
or hangs, for a connection dropped silently). NOTIFYs sent while it was down are
lost: a user catches up on `True` (a relay looks for work, a cache starts empty).
Connecting again is retried with exponential backoff, forever; nothing is raised.

`await listener.fence()` returns once every NOTIFY committed before the call has
been handed to `on_notify` (a cache's read-after-write check, see `fence`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from mlplane_runtime.db import Database, libpq_url
from mlplane_runtime.waiting import wait_set

_log = logging.getLogger("mlplane.runtime.listen")

OnNotify = Callable[[str, str], None]
"""`(channel, payload)` of one NOTIFY; called on the event loop, must not block."""
OnConnection = Callable[[bool], None]
"""`True` once LISTENing (again), `False` once the connection is lost or closed."""


class NotificationListener:
    """Keeps one LISTEN connection on `channels` up while it runs; see the module docstring."""

    def __init__(
        self,
        database: Database,
        channels: Sequence[str],
        on_notify: OnNotify,
        *,
        on_connection: OnConnection | None = None,
        name: str = "listener",
        heartbeat_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        max_backoff_s: float = 10.0,
        fence_timeout_s: float = 2.0,
    ) -> None:
        if not channels:
            raise ValueError("a listener needs at least one channel")
        self._database = database
        self._channels = tuple(channels)
        self._on_notify = on_notify
        self._on_connection = on_connection
        self._name = name
        self._heartbeat_s = heartbeat_s
        self._connect_timeout_s = connect_timeout_s
        self._max_backoff_s = max_backoff_s
        self._fence_timeout_s = fence_timeout_s
        self._connected = False
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        # One query at a time on the connection: the heartbeat's and the fences'.
        self._query_lock = asyncio.Lock()
        self._next_fence: asyncio.Future[None] | None = None
        self._fences: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """True while the connection is up and LISTENing on every channel."""
        return self._connected

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend of the LISTEN connection while it is up (None otherwise)."""
        conn = self._conn
        return None if conn is None else int(conn.get_server_pid())

    def start(self) -> None:
        """Run in a background task on the running loop (no-op when already running)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"listen-{self._channels[0]}")

    async def aclose(self) -> None:
        """Stop the task `start()` made and close the connection (`on_connection(False)`)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def fence(self) -> None:
        """Returns once every NOTIFY committed before this call was passed to `on_notify`.

        Why a round trip on the LISTEN connection is enough: a committing transaction
        queues its NOTIFYs and signals every listening backend before its COMMIT
        returns, so before whoever committed can tell anyone. The listening backend
        therefore has the signal pending before it reads the `SELECT 1` sent here,
        and sends its pending notifications before that query's answer (PostgreSQL
        delivers them whenever it is about to wait for the client). asyncpg passes
        each notification to `call_soon` as it reads it, so the callbacks run before
        the task awaiting the later answer resumes. Concurrent calls share one round
        trip, started after the newest of them arrived. Raises ConnectionError when
        not LISTENing or when the round trip fails or takes over `fence_timeout_s`
        (the connection is then dropped, and `on_connection(False)` follows).
        """
        if self._conn is None:
            raise ConnectionError(f"{self._name}: not listening")
        waiter = self._next_fence
        if waiter is None:
            waiter = self._next_fence = asyncio.get_running_loop().create_future()
            if self._fences is None or self._fences.done():
                self._fences = asyncio.create_task(self._run_fences(), name=f"fence-{self._name}")
        await asyncio.shield(waiter)

    async def _run_fences(self) -> None:
        while self._next_fence is not None:
            # Callers joining from here on wait for the next round trip, sent after them.
            waiter, self._next_fence = self._next_fence, None
            conn = self._conn
            try:
                if conn is None:
                    raise ConnectionError(f"{self._name}: not listening")
                await self._query(conn, self._fence_timeout_s)
                await asyncio.sleep(0)  # the notifications read before the answer run first
            except Exception as exc:
                if conn is not None:
                    conn.terminate()  # the run loop sees it lost and reconnects
                waiter.set_exception(ConnectionError(f"{self._name}: fence failed: {exc!r}"))
                waiter.exception()  # retrieved: a caller may have given up waiting
            else:
                waiter.set_result(None)

    async def _query(self, conn: Any, timeout_s: float) -> None:
        async with self._query_lock, asyncio.timeout(timeout_s):
            await conn.execute("SELECT 1")

    async def run(self) -> None:
        """Connect, LISTEN and reconnect until cancelled; never returns otherwise."""
        failures = 0
        dsn = libpq_url(self._database.url)
        while True:
            try:
                conn = await asyncpg.connect(
                    dsn,
                    timeout=self._connect_timeout_s,
                    server_settings=self._database.server_settings(),
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                _log.warning("%s: LISTEN connect failed: %s", self._name, exc)
                await asyncio.sleep(self._backoff(failures))
                continue
            try:
                await self._listen_on(conn)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                _log.warning("%s: LISTEN connection lost: %s", self._name, exc)
            finally:
                self._set_connected(False)
                conn.terminate()
            await asyncio.sleep(self._backoff(max(failures, 1)))

    async def _listen_on(self, conn: Any) -> None:
        """Returns or raises when `conn` is lost."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        for channel in self._channels:
            await conn.add_listener(channel, self._notified)
        self._conn = conn
        self._set_connected(True)
        try:
            while not lost.is_set():
                if not await wait_set(lost, self._heartbeat_s):
                    # A silently dropped connection (no FIN) shows up only when used.
                    await self._query(conn, self._heartbeat_s)
        finally:
            self._conn = None
        _log.warning("%s: LISTEN connection closed", self._name)

    def _notified(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        try:
            self._on_notify(channel, payload)
        except Exception:
            _log.exception("%s: handling a NOTIFY on %s failed", self._name, channel)

    def _set_connected(self, up: bool) -> None:
        if up == self._connected and not up:
            return  # told once per loss
        self._connected = up
        if self._on_connection is not None:
            try:
                self._on_connection(up)
            except Exception:
                _log.exception("%s: the connection callback failed", self._name)

    def _backoff(self, failures: int) -> float:
        return float(min(self._max_backoff_s, 0.1 * 2 ** min(failures, 16)))
