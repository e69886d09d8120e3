"""Scans reading the cached database and a refresh replacing it never meet."""

from __future__ import annotations

import asyncio

from mlplane_scanner.trivy.db_gate import DbGate


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class TestDbGate:
    async def test_readers_share_the_database(self) -> None:
        gate = DbGate()
        inside = 0
        most = 0

        async def read() -> None:
            nonlocal inside, most
            async with gate.reading():
                inside += 1
                most = max(most, inside)
                await asyncio.sleep(0.01)
                inside -= 1

        await asyncio.wait_for(asyncio.gather(*(read() for _ in range(3))), 5)

        assert most == 3

    async def test_a_replacement_waits_for_readers_and_holds_new_ones_back(self) -> None:
        gate = DbGate()
        events: list[str] = []
        release_first = asyncio.Event()

        async def first_reader() -> None:
            async with gate.reading():
                events.append("read-1 in")
                await release_first.wait()
                events.append("read-1 out")

        async def replace() -> None:
            async with gate.replacing():
                events.append("replace")

        async def second_reader() -> None:
            async with gate.reading():
                events.append("read-2 in")

        tasks = [asyncio.create_task(first_reader())]
        await _settle()
        tasks.append(asyncio.create_task(replace()))
        await _settle()
        tasks.append(asyncio.create_task(second_reader()))
        await _settle()
        assert events == ["read-1 in"]

        release_first.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)

        assert events == ["read-1 in", "read-1 out", "replace", "read-2 in"]

    async def test_a_replacement_given_up_lets_waiting_readers_in(self) -> None:
        gate = DbGate()
        release = asyncio.Event()
        entered = asyncio.Event()

        async def hold() -> None:
            async with gate.reading():
                await release.wait()

        async def read() -> None:
            async with gate.reading():
                entered.set()

        holder = asyncio.create_task(hold())
        await _settle()
        replacement = asyncio.create_task(gate.replacing().__aenter__())
        await _settle()
        reader = asyncio.create_task(read())
        await _settle()
        assert not entered.is_set()

        replacement.cancel()
        await asyncio.wait_for(entered.wait(), 5)
        release.set()
        await asyncio.wait_for(asyncio.gather(holder, reader), 5)
