"""The build worker: claims pending builds, runs them, records what happened.

Up to `max_concurrent_builds` slots run in the plug-in's lifespan. A slot claims one
build (SKIP LOCKED, so replicas never take the same one) under a lease it renews
while the build runs; a build whose worker died is claimed again once its lease runs
out. The outcome is recorded, and its event emitted, in one new unit of work: the
consumer's transaction never waits on a build.

Slots sleep until `wake()` (a build was just recorded in this process), the next
retry is due, or the poll interval passes (builds recorded by other replicas).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from mlplane_runtime.uow import UnitOfWorkFactory

from mlplane_builder import metrics
from mlplane_builder.domain import Build, BuildFailure, BuildStatus, failures
from mlplane_builder.pipeline import BuildResult
from mlplane_builder.service import BuilderService
from mlplane_builder.settings import BuilderSettings
from mlplane_builder.store import BuilderTables

_log = logging.getLogger("mlplane.builder")

RunBuild = Callable[[Build], Coroutine[Any, Any, BuildResult]]
"""Runs the pipeline for a claimed build; raises BuildFailure."""

_MIB = 1024 * 1024


class BuildWorker:
    """Runs builds of one hosted builder. `async with worker:` starts and stops its slots."""

    def __init__(
        self,
        service: str,
        uow_factory: UnitOfWorkFactory,
        tables: BuilderTables,
        settings: BuilderSettings,
        run_build: RunBuild,
    ) -> None:
        self._service = service
        self._uow_factory = uow_factory
        self._tables = tables
        self._settings = settings
        self._run_build = run_build
        self.owner = f"{socket.gethostname()}:{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def wake(self) -> None:
        """A build may be waiting: idle slots look now instead of at the next poll."""
        self._wake.set()

    async def __aenter__(self) -> BuildWorker:
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._slot(), name=f"{self._service}-build-slot-{n}")
            for n in range(self._settings.max_concurrent_builds)
        ]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stops the slots; a build cut short stays `running` until its lease expires,
        then another worker (or this one after a restart) picks it up again."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def run_once(self) -> Build | None:
        """Claim one due build and run it to a recorded outcome; None when none is due."""
        async with self._uow_factory() as uow:
            build = await BuilderService(uow, self._tables).claim(
                self.owner, self._settings.lease_s
            )
            await uow.commit()
        if build is None:
            return None
        return await self._run_claimed(build)

    async def _slot(self) -> None:
        while not self._stopping:
            try:
                build = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: wait, then look again
                _log.error("build worker could not claim or record a build", exc_info=exc)
                build = None
            if build is not None:
                continue  # more may be waiting
            await self._idle()

    async def _idle(self) -> None:
        timeout = self._settings.poll_interval_s
        with contextlib.suppress(Exception):
            async with self._uow_factory() as uow:
                due_in = await BuilderService(uow, self._tables).next_due_in()
            if due_in is not None:
                timeout = min(timeout, max(due_in, 0.05))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def _run_claimed(self, build: Build) -> Build | None:
        settings = self._settings
        request = build.request
        if build.attempts > settings.build_attempts:
            # Claimed again after its lease ran out too many times: its workers died.
            return await self._record_failure(build, failures.worker_lost(build.attempts - 1), 0.0)
        name = f"{request.team}/{request.model} v{request.version}"
        _log.info(
            "build %d of %s started (try %d, %.1f MiB artifact)",
            build.id,
            name,
            build.attempts,
            request.artifact_size / _MIB,
            extra={"build_id": build.id, "attempt": build.attempts},
        )
        started = time.monotonic()
        gauge = metrics.BUILDS_RUNNING.labels(self._service)
        gauge.inc()
        running: asyncio.Task[BuildResult] = asyncio.create_task(
            self._run_build(build), name=f"build-{build.id}"
        )
        heartbeat = asyncio.create_task(self._heartbeat(build, running))
        try:
            try:
                async with asyncio.timeout(settings.build_timeout_s):
                    result = await running
            except TimeoutError:
                raise failures.timed_out(settings.build_timeout_s) from None
        except BuildFailure as failure:
            return await self._record_failure(build, failure, time.monotonic() - started)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if heartbeat.done() and current is not None and not current.cancelling():
                # Another worker owns the build now: this try's outcome is not ours to record.
                _log.warning("build %d stopped: its lease passed to another worker", build.id)
                return None
            raise
        except Exception as exc:
            _log.error("build %d failed unexpectedly", build.id, exc_info=exc)
            bug = failures.internal(f"{type(exc).__name__}: {exc}")
            return await self._record_failure(build, bug, time.monotonic() - started)
        finally:
            running.cancel()
            heartbeat.cancel()
            await asyncio.gather(running, heartbeat, return_exceptions=True)
            gauge.dec()
        return await self._record_success(build, result, time.monotonic() - started)

    async def _heartbeat(self, build: Build, running: asyncio.Task[BuildResult]) -> None:
        """Renew the lease every third of it; cancel the build when the lease is lost."""
        lease_s = self._settings.lease_s
        while True:
            await asyncio.sleep(lease_s / 3)
            try:
                async with self._uow_factory() as uow:
                    held = await BuilderService(uow, self._tables).renew_lease(
                        build, self.owner, lease_s
                    )
                    await uow.commit()
            except Exception as exc:
                _log.warning("build %d: lease not renewed (%s)", build.id, exc)
                continue
            if not held:
                running.cancel()
                return

    async def _record_success(
        self, build: Build, result: BuildResult, elapsed_s: float
    ) -> Build | None:
        async with self._uow_factory() as uow:
            done = await BuilderService(uow, self._tables).record_success(build, self.owner, result)
            await uow.commit()
        outcome = result.outcome
        if done is None:
            _log.warning("build %d finished after its lease was lost; not recorded", build.id)
            return None
        metrics.BUILD_DURATION.labels(
            self._service, "reused" if outcome.reused else "succeeded"
        ).observe(elapsed_s)
        metrics.BYTES_UPLOADED.labels(self._service).inc(outcome.bytes_uploaded)
        rate = (
            build.request.artifact_size / _MIB / result.artifact_seconds
            if result.artifact_seconds > 0
            else 0.0
        )
        _log.info(
            "build %d succeeded in %.2f s: %s@%s, %.1f MiB uploaded, artifact at %.1f MiB/s%s",
            build.id,
            elapsed_s,
            outcome.repository,
            outcome.digest,
            outcome.bytes_uploaded / _MIB,
            rate,
            " (identical image already there, nothing uploaded)" if outcome.reused else "",
            extra={
                "build_id": build.id,
                "image_digest": outcome.digest,
                "bytes_uploaded": outcome.bytes_uploaded,
                "duration_s": round(elapsed_s, 3),
                "artifact_mib_per_s": round(rate, 1),
            },
        )
        return done

    async def _record_failure(
        self, build: Build, failure: BuildFailure, elapsed_s: float
    ) -> Build | None:
        settings = self._settings
        async with self._uow_factory() as uow:
            after = await BuilderService(uow, self._tables).record_failure(
                build,
                self.owner,
                failure,
                max_attempts=settings.build_attempts,
                retry_delay_s=settings.retry_delay_s,
            )
            await uow.commit()
        if after is None:
            _log.warning("build %d failed after its lease was lost; not recorded", build.id)
            return None
        final = after.status is BuildStatus.FAILED
        metrics.BUILD_FAILURES.labels(self._service, failure.kind.value, str(final).lower()).inc()
        metrics.BUILD_DURATION.labels(self._service, "failed" if final else "retrying").observe(
            elapsed_s
        )
        _log.warning(
            "build %d %s (try %d took %.2f s): %s",
            build.id,
            "failed" if final else "failed a try and will be retried",
            build.attempts,
            elapsed_s,
            failure.detail,
            extra={"build_id": build.id, "reason_kind": failure.kind.value, "final": final},
        )
        if not final:
            self.wake()  # a slot must be awake for the retry's not_before
        return after
