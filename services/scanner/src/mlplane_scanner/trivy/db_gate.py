"""Scans read the cached vulnerability database while a refresh may want to replace it.

Many scans may read at once; replacing the database waits until none reads it, and
new scans wait while a replacement is waiting, so a refresh is never starved.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class DbGate:
    def __init__(self) -> None:
        self._changed = asyncio.Condition()
        self._readers = 0
        self._writers_waiting = 0
        self._writing = False

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[None]:
        """Hold while a Trivy process reads the cached database."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._writing and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            async with self._changed:
                self._readers -= 1
                self._changed.notify_all()

    @asynccontextmanager
    async def replacing(self) -> AsyncIterator[None]:
        """Hold while the cached database is swapped for a new one: no reader is inside."""
        async with self._changed:
            self._writers_waiting += 1
            try:
                await self._changed.wait_for(lambda: not self._writing and not self._readers)
            finally:
                self._writers_waiting -= 1
                # A writer that gave up must let the readers it held back go in.
                self._changed.notify_all()
            self._writing = True
        try:
            yield
        finally:
            async with self._changed:
                self._writing = False
                self._changed.notify_all()
