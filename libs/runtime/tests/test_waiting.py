"""A waiter cancelled in the loop turn its event is set or its item arrives is cancelled,
not returned: the race Python 3.11's `asyncio.wait_for` loses."""

from __future__ import annotations

import asyncio

import pytest
from mlplane_runtime.waiting import get_within, wait_set


async def _cancelled_while_pending(start_waiting, release, turns: int) -> bool | None:
    """Cancel the waiter `turns` loop turns after `release()`; True when it ended
    cancelled, False when it returned, None when it had finished before the cancel."""
    waiter = asyncio.create_task(start_waiting())
    for _ in range(2):
        await asyncio.sleep(0)  # the waiter is waiting now
    release()
    for _ in range(turns):
        await asyncio.sleep(0)
    if waiter.done():
        return None
    waiter.cancel()
    try:
        await waiter
    except asyncio.CancelledError:
        return True
    return False


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_a_set_event_does_not_swallow_the_cancellation(turns: int) -> None:
    event = asyncio.Event()
    outcome = await _cancelled_while_pending(lambda: wait_set(event, 10), event.set, turns)
    assert outcome is not False


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_an_arriving_item_does_not_swallow_the_cancellation(turns: int) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    outcome = await _cancelled_while_pending(
        lambda: get_within(queue, 10), lambda: queue.put_nowait(1), turns
    )
    assert outcome is not False


async def test_the_race_is_reached() -> None:
    """The case above that matters happens: the waiter is still pending when cancelled."""
    event = asyncio.Event()
    assert await _cancelled_while_pending(lambda: wait_set(event, 10), event.set, 0) is True


async def test_timeouts_and_arrivals() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    event.set()
    assert await wait_set(event, 0.01) is True
    assert await wait_set(event, None) is True
    queue: asyncio.Queue[str] = asyncio.Queue()
    assert await get_within(queue, 0.01) is None
    queue.put_nowait("x")
    assert await get_within(queue, 0) == "x"
