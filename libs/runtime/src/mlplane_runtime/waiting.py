"""Waiting with a time limit that never loses the waiter's own cancellation.

Python 3.11's `asyncio.wait_for` runs what it awaits as a task of its own; when that
task finishes in the same loop turn as the waiter is cancelled, `wait_for` returns the
result and the cancellation is gone (CPython gh-86296; 3.12 rebuilt `wait_for` on
`asyncio.timeout`). A worker loop that loses the cancellation its owner sent runs on
after the owner stopped waiting for it: a service that never stops, a test that hangs
while its worker polls a dropped schema. `asyncio.timeout` cancels the waiter itself
and counts cancellations, so one from outside always wins.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


async def wait_set(event: asyncio.Event, timeout_s: float | None) -> bool:
    """Whether `event` was set within `timeout_s` (None: no limit)."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def get_within(queue: asyncio.Queue[T], timeout_s: float | None) -> T | None:
    """The queue's next item, or None when none came within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            return await queue.get()
    except TimeoutError:
        return None
