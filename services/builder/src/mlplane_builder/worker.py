"""The build worker: the builder's builds as jobs of the runtime's leased job worker.

The runtime's `JobWorker` claims, renews leases, wakes after commits, limits
concurrency (`max_concurrent_builds`) and stops gracefully; this module says what
a build job is: claiming one announces the try (`image.build_started`), running it
runs the pipeline under `build_timeout_s`, and its outcome is recorded (and its
event emitted) in a unit of work of its own: the consumer's transaction never
waits on a build. A build whose workers keep dying is given up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from mlplane_runtime.jobs import ClaimRequest, JobInfo, JobTrace, JobWorker, worker_id
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
    """Runs builds of one hosted builder: `run()` until cancelled, or `run_once()`."""

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
        self.owner = worker_id()
        self._worker: JobWorker[Build, Build | None] = JobWorker(
            service,
            "build",
            self,
            concurrency=settings.max_concurrent_builds,
            lease_s=settings.lease_s,
            poll_s=settings.poll_interval_s,
        )

    def wake(self) -> None:
        """A build may be waiting: an idle worker looks now instead of at the next poll."""
        self._worker.wake()

    async def run(self) -> None:
        """Run builds until cancelled (a `ServiceWorker`); a build cut short by the stop
        is released, due again at once."""
        await self._worker.run()

    async def run_once(self) -> Build | None:
        """Claim one due build and run it to a recorded outcome; None when none is due
        (or its lease passed to another worker meanwhile)."""
        return await self._worker.run_once()

    # -- the runtime's LeasedJobs ---------------------------------------------------

    async def claim(self, request: ClaimRequest) -> Sequence[Build]:
        claimed: list[Build] = []
        async with self._uow_factory() as uow:
            service = BuilderService(uow, self._tables)
            while len(claimed) < request.limit:
                build = await service.claim(self.owner, request.lease_s)
                if build is None:
                    break
                claimed.append(build)
            await uow.commit()
        return claimed

    async def renew(self, build: Build, lease_s: float) -> bool:
        async with self._uow_factory() as uow:
            held = await BuilderService(uow, self._tables).renew_lease(build, self.owner, lease_s)
            await uow.commit()
        return held

    async def release(self, build: Build) -> None:
        async with self._uow_factory() as uow:
            await BuilderService(uow, self._tables).release(build, self.owner)
            await uow.commit()

    def describe(self, build: Build) -> JobInfo:
        request = build.request
        return JobInfo(
            id=str(build.id),
            trace=JobTrace(build.traceparent, build.tracestate),
            attributes={
                "mlplane.team": request.team,
                "mlplane.model": request.model,
                "mlplane.model_version": request.version,
                "mlplane.attempt": build.attempts,
            },
        )

    async def next_due_in(self) -> float | None:
        async with self._uow_factory() as uow:
            return await BuilderService(uow, self._tables).next_due_in()

    async def run_job(self, build: Build) -> Build | None:
        """Run a claimed build to a recorded outcome (None when its lease was lost)."""
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
        try:
            try:
                async with asyncio.timeout(settings.build_timeout_s):
                    result = await self._run_build(build)
            except TimeoutError:
                raise failures.timed_out(settings.build_timeout_s) from None
        except BuildFailure as failure:
            return await self._record_failure(build, failure, time.monotonic() - started)
        except Exception as exc:
            _log.error("build %d failed unexpectedly", build.id, exc_info=exc)
            bug = failures.internal(f"{type(exc).__name__}: {exc}")
            return await self._record_failure(build, bug, time.monotonic() - started)
        finally:
            gauge.dec()
        return await self._record_success(build, result, time.monotonic() - started)

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
