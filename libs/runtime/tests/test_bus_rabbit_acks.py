"""AckWindow: deliveries acknowledged in contiguous settled runs, never ahead of a handler."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import aiormq
from mlplane_runtime.bus.rabbit_acks import AckWindow


class RecordingChannel:
    def __init__(self) -> None:
        self.is_closed = False
        self.acks: list[tuple[int, bool]] = []

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, **_: Any) -> None:
        self.acks.append((delivery_tag, multiple))


def window() -> tuple[AckWindow, RecordingChannel]:
    channel = RecordingChannel()
    return AckWindow(cast(aiormq.abc.AbstractChannel, channel)), channel


async def settle() -> None:
    for _ in range(3):  # the flush, then the ack's task
        await asyncio.sleep(0)


class TestAckWindow:
    async def test_a_batch_settled_together_is_acked_with_one_frame(self) -> None:
        acks, channel = window()
        for tag in range(1, 51):
            acks.received(tag)
        for tag in range(1, 51):
            acks.ack(tag)
        await settle()
        assert channel.acks == [(50, True)]

    async def test_nothing_after_an_open_delivery_is_acked_until_it_settles(self) -> None:
        acks, channel = window()
        for tag in (1, 2, 3, 4):
            acks.received(tag)
        for tag in (2, 3, 4):
            acks.ack(tag)
        await settle()
        assert channel.acks == []
        acks.ack(1)
        await settle()
        assert channel.acks == [(4, True)]

    async def test_runs_are_acked_as_they_complete(self) -> None:
        acks, channel = window()
        for tag in (1, 2, 3):
            acks.received(tag)
        acks.ack(1)
        await settle()
        acks.ack(3)
        await settle()
        acks.ack(2)
        await settle()
        assert channel.acks == [(1, True), (3, True)]

    async def test_a_requeued_delivery_does_not_block_and_is_never_the_ack_tag(self) -> None:
        acks, channel = window()
        for tag in (1, 2, 3):
            acks.received(tag)
        acks.ack(1)
        acks.forget(3)  # nacked by itself
        await settle()
        assert channel.acks == [(1, True)]
        acks.ack(2)
        await settle()
        assert channel.acks == [(1, True), (2, True)]

    async def test_forgetting_an_acked_delivery_keeps_its_ack(self) -> None:
        acks, channel = window()
        acks.received(1)
        acks.ack(1)
        acks.forget(1)
        await settle()
        assert channel.acks == [(1, True)]

    async def test_a_delivery_not_seen_yet_stops_the_run(self) -> None:
        acks, channel = window()
        acks.received(1)
        acks.received(3)  # 2 was delivered but its handler has not started
        acks.ack(1)
        acks.ack(3)
        await settle()
        assert channel.acks == [(1, True)]

    async def test_nothing_is_sent_on_a_closed_channel(self) -> None:
        acks, channel = window()
        acks.received(1)
        channel.is_closed = True
        acks.ack(1)
        await settle()
        assert channel.acks == []
