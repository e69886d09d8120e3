"""The builder's use cases on a unit of work; they never commit it (the caller does).

Recording a build is cheap and happens in the consumer's transaction; the build
itself runs in a worker, which records its outcome (and emits the event that says
so) in a transaction of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime

from mlplane_contracts import events as ev
from mlplane_runtime.errors import NotFound
from mlplane_runtime.jobs import JobTrace
from mlplane_runtime.telemetry.tracing import continuing
from mlplane_runtime.uow import UnitOfWork

from mlplane_builder.domain import Build, BuildFailure, BuildRequest, BuildStatus
from mlplane_builder.pipeline import BuildResult
from mlplane_builder.store import BuilderTables, BuildFilter, BuildStore

BACKEND = ev.BuildBackend.OCI_APPEND


class BuildNotFound(NotFound):
    pass


def request_from_event(data: ev.ModelVersionRegistered) -> BuildRequest:
    """What to build for a registered version, as the event describes it."""
    return BuildRequest(
        team=data.team,
        model=data.model,
        version=data.version,
        framework=data.artifact.framework.value,
        artifact_uri=data.artifact.uri,
        artifact_sha256=data.artifact.sha256,
        artifact_size=data.artifact.size_bytes,
        artifact_media_type=data.artifact.media_type,
        git_repository=data.lineage.git_repository,
        commit_sha=data.lineage.commit_sha,
        ci_run_url=data.lineage.ci_run_url,
        registered_at=data.registered_at,
    )


class BuilderService:
    """Use cases of the builder on one unit of work."""

    def __init__(self, uow: UnitOfWork, tables: BuilderTables) -> None:
        self._uow = uow
        self._store = BuildStore(uow.session, tables)

    async def request_build(self, request: BuildRequest) -> Build | None:
        """Record a pending build of `request` in the current trace (its run continues
        it); None when the version has one (a redelivered event, or the same version
        registered again): nothing new happens."""
        return await self._store.insert_pending(request, JobTrace.current())

    async def get_build(self, team: str, build_id: int) -> Build:
        """The build `build_id` of `team`. Raises BuildNotFound (also for another team's)."""
        build = await self._store.get(build_id, team=team)
        if build is None:
            raise BuildNotFound(f"team {team} has no build {build_id}", build_id=build_id)
        return build

    async def list_builds(
        self, where: BuildFilter, *, limit: int, before_id: int | None
    ) -> list[Build]:
        return await self._store.list(where, limit=limit, before_id=before_id)

    async def rebuild(self, team: str, build_id: int) -> Build:
        """Put a finished build back in the queue. Raises BuildNotFound, BuildNotRebuildable."""
        build = await self._store.get_for_update(build_id, team=team)
        if build is None:
            raise BuildNotFound(f"team {team} has no build {build_id}", build_id=build_id)
        trace = JobTrace.current()
        again = build.rebuild(datetime.now(UTC), trace.traceparent, trace.tracestate)
        await self._store.save(again)
        return again

    async def claim(self, owner: str, lease_s: float) -> Build | None:
        """Claim the next due build for `owner` and announce the try (`image.build_started`,
        in the trace of what asked for the build)."""
        build = await self._store.claim(owner, lease_s)
        if build is not None:
            with continuing(build.traceparent, build.tracestate):
                self._emit_started(build)
        return build

    def _emit_started(self, build: Build) -> None:
        request = build.request
        self._uow.emit(
            ev.ImageBuildStarted(
                team=request.team,
                model=request.model,
                version=request.version,
                backend=BACKEND,
                attempt=max(build.attempts, 1),
                started_at=build.started_at or datetime.now(UTC),
            ),
            subject=request.subject,
        )

    async def renew_lease(self, build: Build, owner: str, lease_s: float) -> bool:
        return await self._store.renew_lease(build.id, owner, lease_s)

    async def release(self, build: Build, owner: str) -> bool:
        """Put `owner`'s unfinished try back (the worker is stopping); False if lost."""
        return await self._store.release(build.id, owner)

    async def record_success(self, build: Build, owner: str, result: BuildResult) -> Build | None:
        """Record the image `result` describes and emit `image.built`; None (and
        nothing emitted) when `owner` no longer holds the build."""
        now = datetime.now(UTC)
        done = build.succeeded(result.outcome, now, result.note)
        if not await self._store.finish_try(done, owner):
            return None
        outcome = result.outcome
        request = build.request
        base = outcome.base_image
        self._uow.emit(
            ev.ImageBuilt(
                team=request.team,
                model=request.model,
                version=request.version,
                image=ev.ImageReference(repository=outcome.repository, digest=outcome.digest),
                # A scratch image names itself as its base: it is built on nothing else.
                base_image=_reference(base)
                if base is not None
                else ev.ImageReference(repository=outcome.repository, digest=outcome.digest),
                layers=tuple(
                    ev.ImageLayer(
                        digest=layer.digest, size_bytes=layer.size, media_type=layer.media_type
                    )
                    for layer in outcome.layers
                ),
                size_bytes=outcome.image_size,
                backend=BACKEND,
                built_at=now,
            ),
            subject=request.subject,
        )
        return done

    async def record_failure(
        self,
        build: Build,
        owner: str,
        failure: BuildFailure,
        *,
        max_attempts: int,
        retry_delay_s: float,
    ) -> Build | None:
        """Record a failed try: pending again while retryable tries are left, else
        failed with `image.build_failed` emitted. None when `owner` lost the build."""
        now = datetime.now(UTC)
        after = build.failed(failure, now, max_attempts=max_attempts, retry_delay_s=retry_delay_s)
        if not await self._store.finish_try(after, owner):
            return None
        if after.status is BuildStatus.FAILED:
            request = build.request
            self._uow.emit(
                ev.ImageBuildFailed(
                    team=request.team,
                    model=request.model,
                    version=request.version,
                    backend=BACKEND,
                    reason=failure.detail[:4096],
                    retryable=failure.can_retry,
                    failed_at=now,
                ),
                subject=request.subject,
            )
        return after

    async def next_due_in(self) -> float | None:
        return await self._store.next_due_in()


def _reference(pinned: str) -> ev.ImageReference:
    repository, _, digest = pinned.partition("@")
    return ev.ImageReference(repository=repository, digest=digest)
