"""Even shares of open connections among the workers of `mlplane serve --workers N`.

Every worker accepts on the one listening socket, and asyncio accepts every
connection pending when its loop wakes. A burst of keep-alive connections (a
gateway's pool opening, a load generator starting) then lands mostly on one
worker, which stays the busy one for as long as the connections live: 11 and 5 of
16 in `bench/registry.py`, the first worker saturated while the second idled.

So each worker publishes how many connections it holds on a board all workers
share (an anonymous shared memory map made before the fork), and a worker that
accepts a connection while it already holds more than the least loaded one hands
the connection over: before a byte is read from it, the socket goes to that
worker over a Unix datagram socket (SCM_RIGHTS), which serves it as its own. A
connection is handed over at most once. If handing over fails (the other's queue
is full), the worker keeps the connection.

A worker's load is what it holds plus what is on its way to it: asyncio accepts a
whole burst before the first `connection_made` runs, so a worker hands over many
connections before the receiver has adopted any. Every slot has one writer, so no
lock is needed: `held[i]` by worker i, `sent[i][j]` (connections i ever handed to
j) by i, `adopted[i][j]` (those j took in) by j; on their way to j is the sum over
i of `sent[i][j] - adopted[i][j]`.

The parent marks a dead worker's slot as full until its replacement publishes, so
nothing is handed to a worker that is not there; what was already sent waits in
the socket, which the parent holds open, for the replacement.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import mmap
import socket
import struct
from collections.abc import Callable

_SLOT = struct.Struct("q")
_ABSENT = 2**62
"""The count a slot shows while its worker is not running: never the least loaded."""


class ConnectionBalancer:
    """The board and the hand-over sockets of `count` workers; made before the fork,
    then `seat(index)` in each worker."""

    def __init__(self, count: int) -> None:
        self.count = count
        # held[count], then sent[count][count], then adopted[count][count].
        self._board = mmap.mmap(-1, _SLOT.size * count * (1 + 2 * count))
        # One datagram pair per worker: it receives on [0]; everyone sends on [1].
        self._pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(count)]
        for receiving, sending in self._pairs:
            receiving.setblocking(False)
            sending.setblocking(False)
        for index in range(count):
            self.vacate(index)
        self.index: int | None = None
        self._left = False

    def seat(self, index: int) -> None:
        """This process is worker `index` (in the child, after the fork)."""
        self.index = index
        self._left = False
        self.publish(0)

    def vacate(self, index: int) -> None:
        """Worker `index` is not running (the parent, when it exits)."""
        _SLOT.pack_into(self._board, _SLOT.size * index, _ABSENT)

    def publish(self, held: int) -> None:
        """This worker now holds `held` connections (not once it has left)."""
        if self.index is not None and not self._left:
            _SLOT.pack_into(self._board, _SLOT.size * self.index, held)

    def leave(self) -> None:
        """This worker is stopping: nothing more is handed to it."""
        if self.index is not None:
            self._left = True
            self.vacate(self.index)

    def held(self, index: int) -> int:
        """How many connections worker `index` said it holds."""
        return self._read(index)

    def load(self, index: int) -> int:
        """What worker `index` holds and what is on its way to it."""
        coming = sum(
            self._read(self._sent(sender, index)) - self._read(self._adopted(sender, index))
            for sender in range(self.count)
        )
        return self.held(index) + coming

    def target(self, held: int) -> int | None:
        """The worker a new connection should go to while this one holds `held`: the
        least loaded other, if it has less; None to keep it."""
        least, least_load = None, held
        for index in range(self.count):
            if index != self.index and (other := self.load(index)) < least_load:
                least, least_load = index, other
        return least

    def hand_over(self, target: int, connection: int) -> bool:
        """Send the socket `connection` (a file descriptor) to worker `target`; False
        (keep it) if that cannot be done now. The caller closes its own copy after True.
        """
        assert self.index is not None, "seat() first"
        try:
            socket.send_fds(self._pairs[target][1], [_SLOT.pack(self.index)], [connection])
        except OSError:
            return False
        self._add(self._sent(self.index, target))
        return True

    def receive(self, adopt: Callable[[socket.socket, Callable[[], None]], None]) -> None:
        """Pass every connection handed to this worker to `adopt` with a callback to call
        once it holds (and has published) it, on the running loop."""
        assert self.index is not None, "seat() first"
        index = self.index
        receiving = self._pairs[index][0]

        def on_readable() -> None:
            while True:
                try:
                    message, fds, _, _ = socket.recv_fds(receiving, _SLOT.size, 1)
                except (BlockingIOError, InterruptedError):
                    return
                counted = functools.partial(
                    self._add, self._adopted(_SLOT.unpack(message)[0], index)
                )
                for fd in fds:
                    adopt(socket.socket(fileno=fd), counted)

        asyncio.get_running_loop().add_reader(receiving.fileno(), on_readable)

    def _sent(self, sender: int, receiver: int) -> int:
        return self.count + sender * self.count + receiver

    def _adopted(self, sender: int, receiver: int) -> int:
        return self.count + self.count * self.count + sender * self.count + receiver

    def _read(self, slot: int) -> int:
        value: int = _SLOT.unpack_from(self._board, _SLOT.size * slot)[0]
        return value

    def _add(self, slot: int) -> None:
        _SLOT.pack_into(self._board, _SLOT.size * slot, self._read(slot) + 1)

    def stop_receiving(self) -> None:
        if self.index is not None:
            with contextlib.suppress(RuntimeError, ValueError):
                asyncio.get_running_loop().remove_reader(self._pairs[self.index][0].fileno())
