"""Build records on the real PostgreSQL: recorded once per version from the event,
claimed by one worker at a time, reclaimed when a worker's lease runs out."""

from __future__ import annotations

import asyncio

from mlplane_builder import handlers
from mlplane_builder.domain import BuildStatus, failures
from mlplane_builder.service import BuilderService
from mlplane_builder.store import BuilderTables, BuildFilter
from mlplane_contracts import events as ev
from mlplane_runtime.uow import UnitOfWorkFactory
from sqlalchemy import func, select

from ..conftest import consumer_of, deliverer, registered


async def builds_of(uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str) -> list:
    async with uow_factory() as uow:
        return await BuilderService(uow, tables).list_builds(
            BuildFilter(team=team), limit=100, before_id=None
        )


async def outbox_types(uow_factory: UnitOfWorkFactory, tables: BuilderTables) -> list[str]:
    async with uow_factory() as uow:
        outbox = tables.messaging.outbox
        rows = await uow.session.execute(select(outbox.c.type).order_by(outbox.c.position))
        return [row.type for row in rows]


class TestRecording:
    async def test_registered_version_is_recorded_pending_and_wakes_workers_on_commit(
        self, uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str
    ) -> None:
        woken: list[int] = []
        deliver = deliverer(
            consumer_of(uow_factory, dict(handlers.event_handlers(tables, lambda: woken.append(1))))
        )
        await deliver(registered(team, version=3))
        [build] = await builds_of(uow_factory, tables, team)
        assert build.status is BuildStatus.PENDING
        assert build.request.version == 3
        assert build.request.artifact_sha256 == "ab" * 32
        assert woken == [1]

    async def test_redelivered_event_has_no_second_effect(
        self, uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str
    ) -> None:
        deliver = deliverer(consumer_of(uow_factory, dict(handlers.event_handlers(tables))))
        event = registered(team)
        await deliver(event)
        await deliver(event)
        # The same version announced by another event id: still one build.
        await deliver(registered(team))
        assert len(await builds_of(uow_factory, tables, team)) == 1


class TestClaims:
    async def test_concurrent_claims_never_take_the_same_build(
        self, uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str
    ) -> None:
        deliver = deliverer(consumer_of(uow_factory, dict(handlers.event_handlers(tables))))
        for version in (1, 2, 3):
            await deliver(registered(team, version=version))

        async def claim(owner: str) -> int | None:
            async with uow_factory() as uow:
                build = await BuilderService(uow, tables).claim(owner, 60)
                await asyncio.sleep(0.05)  # hold the row lock while the others claim
                await uow.commit()
                return None if build is None else build.id

        claimed = await asyncio.gather(*(claim(f"w{n}") for n in range(5)))
        taken = [c for c in claimed if c is not None]
        assert len(taken) == 3
        assert len(set(taken)) == 3

    async def test_a_build_whose_lease_ran_out_is_claimed_again(
        self, uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str
    ) -> None:
        deliver = deliverer(consumer_of(uow_factory, dict(handlers.event_handlers(tables))))
        await deliver(registered(team))
        async with uow_factory() as uow:
            first = await BuilderService(uow, tables).claim("crashed", 0.2)
            await uow.commit()
        assert first is not None
        async with uow_factory() as uow:
            assert await BuilderService(uow, tables).claim("other", 60) is None
        await asyncio.sleep(0.3)
        async with uow_factory() as uow:
            again = await BuilderService(uow, tables).claim("other", 60)
            await uow.commit()
        assert again is not None
        assert again.id == first.id
        assert again.attempts == 2
        # The crashed worker's late outcome is not recorded over the new owner's try.
        async with uow_factory() as uow:
            late = await BuilderService(uow, tables).record_failure(
                first,
                "crashed",
                failures.registry_unavailable("r", "x"),
                max_attempts=3,
                retry_delay_s=0,
            )
            await uow.commit()
        assert late is None
        # Only the two claims' announcements: the late outcome emitted nothing.
        assert await outbox_types(uow_factory, tables) == [ev.IMAGE_BUILD_STARTED] * 2

    async def test_final_failure_emits_build_failed_with_the_reason(
        self, uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str
    ) -> None:
        deliver = deliverer(consumer_of(uow_factory, dict(handlers.event_handlers(tables))))
        await deliver(registered(team))
        async with uow_factory() as uow:
            service = BuilderService(uow, tables)
            build = await service.claim("w", 60)
            assert build is not None
            failure = failures.artifact_missing(build.request.artifact_uri)
            after = await service.record_failure(
                build, "w", failure, max_attempts=3, retry_delay_s=0
            )
            events = await uow.commit()
        assert after is not None
        assert after.status is BuildStatus.FAILED
        started, event = events
        assert started.type == ev.IMAGE_BUILD_STARTED
        assert event.type == "io.mlplane.image.build_failed.v1"
        assert event.subject == f"models/{team}/fraud/versions/1"
        assert event.data.retryable is False  # type: ignore[union-attr]
        assert "does not exist" in event.data.reason  # type: ignore[union-attr]

    async def test_retryable_failure_waits_then_is_claimed_again(
        self, uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str
    ) -> None:
        deliver = deliverer(consumer_of(uow_factory, dict(handlers.event_handlers(tables))))
        await deliver(registered(team))
        async with uow_factory() as uow:
            service = BuilderService(uow, tables)
            build = await service.claim("w", 60)
            assert build is not None
            await service.record_failure(
                build,
                "w",
                failures.registry_unavailable("r", "down"),
                max_attempts=3,
                retry_delay_s=0.3,
            )
            # The try's start only: a retryable failure with tries left is not announced.
            assert [e.type for e in await uow.commit()] == [ev.IMAGE_BUILD_STARTED]
        async with uow_factory() as uow:
            service = BuilderService(uow, tables)
            assert await service.claim("w", 60) is None
            due_in = await service.next_due_in()
        assert due_in is not None
        assert 0 < due_in <= 0.3
        await asyncio.sleep(0.35)
        async with uow_factory() as uow:
            again = await BuilderService(uow, tables).claim("w", 60)
            await uow.commit()
        assert again is not None
        assert again.attempts == 2


async def test_nothing_is_left_in_the_outbox_by_recording(
    uow_factory: UnitOfWorkFactory, tables: BuilderTables, team: str
) -> None:
    deliver = deliverer(consumer_of(uow_factory, dict(handlers.event_handlers(tables))))
    await deliver(registered(team))
    async with uow_factory() as uow:
        count = await uow.session.scalar(select(func.count()).select_from(tables.builds))
    assert count == 1
    assert await outbox_types(uow_factory, tables) == []
