"""The build worker's record keeping on the real PostgreSQL: leases renewed while a build
runs, builds whose workers keep dying given up, builds that take too long cut off."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from mlplane_builder.domain import BuildStatus
from mlplane_builder.image.layout import OciLayout
from mlplane_builder.service import BuilderService
from mlplane_builder.store import BuilderTables, BuildFilter
from mlplane_contracts import events as ev
from mlplane_contracts.envelope import CloudEvent
from mlplane_runtime.uow import UnitOfWorkFactory
from sqlalchemy import update

from ..conftest import registered
from .builds import builder, deliver_to, outbox_events, run_until_finished, running, settings


def local_event(team: str, root: Path, content: bytes = b"weights") -> CloudEvent:
    # Where the embedded registry keeps the team's `fraud` artifacts under the data dir.
    own = root / "registry" / "artifacts" / "objects" / "teams" / team / "models" / "fraud"
    path = own / "x1" / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return registered(
        team, uri=path.as_uri(), sha256=hashlib.sha256(content).hexdigest(), size=len(content)
    )


async def test_a_build_whose_workers_keep_dying_is_given_up(
    uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str, tmp_path: Path
) -> None:
    await deliver_to(uow_factory, tables, local_event(team, tmp_path))
    for _ in range(2):  # two workers claim it and die without a word
        async with uow_factory() as uow:
            assert await BuilderService(uow, tables).claim("dies", 0.05) is not None
            await uow.commit()
        await asyncio.sleep(0.1)
    async with builder(uow_factory, tables, settings(build_attempts=2), tmp_path) as (_, worker):
        build = await run_until_finished(worker)
    assert build.status is BuildStatus.FAILED
    assert build.error_kind == "worker_lost"
    [event] = await outbox_events(uow_factory, tables)
    assert isinstance(event.data, ev.ImageBuildFailed)
    assert "2 times" in event.data.reason
    assert event.data.retryable is False
    # Each claim announced itself (what moves the registry's version to `building`), the
    # third too: that worker found the tries used up and gave the build up.
    starts = [
        e.data
        for e in await outbox_events(uow_factory, tables, with_starts=True)
        if e.type == ev.IMAGE_BUILD_STARTED
    ]
    assert [start.attempt for start in starts] == [1, 2, 3]
    assert {start.version for start in starts} == {event.data.version}


async def test_a_build_over_its_time_limit_is_cut_off_and_retryable(
    uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str, tmp_path: Path
) -> None:
    await deliver_to(uow_factory, tables, local_event(team, tmp_path))
    config = settings(build_timeout_s=0.0001, build_attempts=1)
    async with builder(uow_factory, tables, config, tmp_path) as (_, worker):
        build = await run_until_finished(worker)
    assert build.status is BuildStatus.FAILED
    assert build.error_kind == "timed_out"
    assert build.retryable is True
    assert "MLPLANE_BUILDER_BUILD_TIMEOUT_S" in (build.error or "")


async def test_leases_are_renewed_by_their_owner_only(
    uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str, tmp_path: Path
) -> None:
    await deliver_to(uow_factory, tables, local_event(team, tmp_path))
    async with uow_factory() as uow:
        build = await BuilderService(uow, tables).claim("owner", 0.3)
        await uow.commit()
    assert build is not None
    for _ in range(3):  # renewed past the first lease's end: nobody else may take it
        await asyncio.sleep(0.15)
        async with uow_factory() as uow:
            service = BuilderService(uow, tables)
            assert await service.renew_lease(build, "owner", 0.3)
            assert not await service.renew_lease(build, "intruder", 0.3)
            assert await service.claim("intruder", 60) is None
            await uow.commit()


async def test_slots_started_by_the_worker_build_what_is_recorded(
    uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str, tmp_path: Path
) -> None:
    config = settings(poll_interval_s=600, max_concurrent_builds=2)
    async with (
        builder(uow_factory, tables, config, tmp_path) as (_, worker),
        running(worker),
    ):
        await deliver_to(uow_factory, tables, local_event(team, tmp_path))
        worker.wake()  # what the consumer's commit does in the plug-in
        async with asyncio.timeout(20):
            while True:
                async with uow_factory() as uow:
                    [build] = await BuilderService(uow, tables).list_builds(
                        BuildFilter(team=team),
                        limit=1,
                        before_id=None,
                    )
                if build.status is BuildStatus.SUCCEEDED:
                    break
                await asyncio.sleep(0.05)


async def test_a_build_whose_lease_is_taken_stops_and_records_nothing(
    uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str, tmp_path: Path
) -> None:
    # Long enough (seconds) to be caught running, and stopped well before its end.
    content = os.urandom(128 * 1024 * 1024)
    await deliver_to(uow_factory, tables, local_event(team, tmp_path, content))
    config = settings(lease_s=0.6)
    async with builder(uow_factory, tables, config, tmp_path) as (runner, worker):
        attempt = asyncio.create_task(worker.run_once())
        async with asyncio.timeout(20):
            while True:  # another worker takes the build over while it runs
                async with uow_factory() as uow:
                    taken = await uow.session.execute(
                        update(tables.builds)
                        .where(tables.builds.c.status == "running")
                        .values(lease_owner="thief")
                        .returning(tables.builds.c.id)
                    )
                    await uow.commit()
                if taken.first() is not None:
                    break
                await asyncio.sleep(0.01)
            outcome = await attempt
        layout = OciLayout(runner.layouts_root / "mlplane" / team / "fraud")
        # Stopped mid-way: no image was finished.
        assert await layout.read_manifest("v1") is None
    assert outcome is None
    async with uow_factory() as uow:
        [build] = await BuilderService(uow, tables).list_builds(
            BuildFilter(team=team), limit=1, before_id=None
        )
    assert build.status is BuildStatus.RUNNING
    assert build.lease_owner == "thief"
    assert await outbox_events(uow_factory, tables) == []
