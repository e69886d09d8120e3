"""The runner's limits with real Trivy: concurrency, time, and an event loop left free."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest
from mlplane_scanner.trivy import TrivyTimedOut

from ..support.fixture_types import MakeTrivyRunner, ScannerTestImages
from .observer import RecordingObserver, eventually_gone


class TestConcurrencyLimit:
    async def test_with_one_slot_scans_never_overlap(
        self, make_trivy_runner: MakeTrivyRunner, test_images: ScannerTestImages
    ) -> None:
        observer = RecordingObserver()
        runner = make_trivy_runner(max_concurrent=1, observer=observer)

        results = await asyncio.gather(
            runner.scan_image(test_images.secret),
            runner.scan_image(test_images.vulnerable),
            runner.scan_image(test_images.clean),
        )

        assert [len(r.findings) > 0 for r in results] == [True, True, False]
        assert len(observer.scans()) == 3
        assert len(observer.downloads()) == 1
        assert observer.most_at_once() == 1

    async def test_with_three_slots_scans_run_side_by_side(
        self, make_trivy_runner: MakeTrivyRunner, test_images: ScannerTestImages
    ) -> None:
        observer = RecordingObserver()
        runner = make_trivy_runner(max_concurrent=3, observer=observer)
        await runner.refresh_db()

        await asyncio.gather(
            runner.scan_image(test_images.secret),
            runner.scan_image(test_images.vulnerable),
            runner.scan_image(test_images.clean),
        )

        # The limit is what kept the scans above apart: with room they overlap.
        assert observer.most_at_once() >= 2


class TestTimeout:
    async def test_a_scan_past_its_time_is_killed_and_reported(
        self, make_trivy_runner: MakeTrivyRunner, test_images: ScannerTestImages, tmp_path: Path
    ) -> None:
        await make_trivy_runner(cache_dir=tmp_path).refresh_db()
        observer = RecordingObserver()
        # Same cache (the database is there), a time limit no scan can meet.
        hurried = make_trivy_runner(cache_dir=tmp_path, observer=observer, timeout_s=0.2)

        with pytest.raises(TrivyTimedOut) as caught:
            await hurried.scan_image(test_images.vulnerable)

        assert caught.value.target == test_images.vulnerable
        (scan,) = observer.scans()
        assert scan.exit_code is None
        assert await eventually_gone(scan.pid)


class TestEventLoop:
    async def test_the_loop_keeps_ticking_while_trivy_scans(
        self, make_trivy_runner: MakeTrivyRunner, test_images: ScannerTestImages
    ) -> None:
        runner = make_trivy_runner()
        ticks: list[float] = []

        async def tick() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        try:
            result = await runner.scan_image(test_images.vulnerable)
        finally:
            ticker.cancel()

        assert result.seconds > 0.5
        gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
        assert max(gaps) < 0.25
        assert len(ticks) > result.seconds / 0.01 / 4
