"""Acknowledging a channel's deliveries in runs: one `basic.ack multiple` per run.

A delivery's ack is owed once its handler's transaction has committed. Deliveries
of one batch commit together, so acking each on its own sent a frame per message,
and on a quorum queue each ack is a Raft command. Here a settled delivery is only
marked; once per event-loop iteration the longest run of settled deliveries from
the oldest open one is acknowledged with a single `multiple` ack up to its last
tag. A delivery still being handled stops the run: nothing after it is acked
before it is settled, so no delivery is ever acknowledged before its effects commit.

Delivery tags are per channel and start again on a new channel after a reconnect;
a window belongs to one aiormq channel. When the channel closes, RabbitMQ requeues
whatever was not acknowledged, so an ack lost that way means a redelivery (which the
inbox absorbs), never a loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiormq

log = logging.getLogger(__name__)


class AckWindow:
    """The open deliveries of one channel, acknowledged in contiguous settled runs."""

    def __init__(self, channel: aiormq.abc.AbstractChannel) -> None:
        self.channel = channel
        # delivery tag -> True to ack, False while open, None when settled otherwise
        # (nacked by itself). Tags arrive in increasing order; dicts keep that order.
        self._open: dict[int, bool | None] = {}
        self._acked_up_to = 0
        self._flush_scheduled = False
        self._sending: set[asyncio.Task[None]] = set()

    def received(self, tag: int) -> None:
        """Note a delivery handed to a handler; it stays open until settled."""
        self._open[tag] = False

    def ack(self, tag: int) -> None:
        """The delivery's effects are committed: acknowledge it with its run."""
        self._settle(tag, True)

    def forget(self, tag: int) -> None:
        """The delivery was nacked by itself (requeued): do not wait for it.

        Only for a delivery RabbitMQ has taken back: a later run's `multiple` ack
        passes over its tag, which must then no longer be outstanding.
        """
        self._settle(tag, None)

    def _settle(self, tag: int, outcome: bool | None) -> None:
        if self._open.get(tag) is not False:
            return  # settled already, or not ours
        self._open[tag] = outcome
        if not self._flush_scheduled:
            self._flush_scheduled = True
            # After the other deliveries settled in this iteration (a batch's).
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        run_end = 0  # last tag of the settled run to ack with `multiple`
        settled: list[int] = []
        expected = self._acked_up_to + 1
        for tag, outcome in self._open.items():
            # A gap means a delivery not seen yet: it must not be acked blindly.
            if outcome is False or tag != expected:
                break
            settled.append(tag)
            if outcome:
                run_end = tag
            expected = tag + 1
        if not settled:
            return
        for tag in settled:
            del self._open[tag]
        self._acked_up_to = settled[-1]
        if run_end and not self.channel.is_closed:
            task = asyncio.ensure_future(self._send(run_end))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, up_to: int) -> None:
        # A channel closing meanwhile requeues the deliveries: redelivered, not lost.
        with contextlib.suppress(Exception):
            await self.channel.basic_ack(up_to, multiple=True)
