"""The registration worker: versions created with only a source, read and verified.

The runtime's `JobWorker` claims the `registrations` rows (`FOR UPDATE SKIP LOCKED`
plus a lease, so replicas share them and a job whose worker died is taken again),
renews leases, wakes after commits and stops gracefully; this module says what one
job is: resolve the source (through the tracking server for `runs:/` and
`models:/m-...`), check the location against the team's (before reading anything),
read it and hash it in constant memory, assemble the lineage, then mark the version
READY (announced by `model.version.registered`) or FAILED_REGISTRATION with what to
do. A store or tracking server that does not answer is tried again with backoff,
`attempts` times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mlplane_contracts.artifacts import ARTIFACT_TREE_MEDIA_TYPE
from mlplane_runtime.jobs import ClaimRequest, JobInfo, JobTrace, JobWorker
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory

from mlplane_registry.domain import Artifact, TeamArtifactLocations
from mlplane_registry.domain.artifacts import TEAM_LOCATIONS_SETTING
from mlplane_registry.domain.registration import (
    LocationUri,
    LoggedModel,
    RegisteredVersion,
    RunArtifacts,
    RunFacts,
    SourceRefused,
    lineage_of,
    parse_source,
)
from mlplane_registry.mlflow.tags import (
    CI_RUN_URL_TAG,
    COMMIT_TAG,
    GIT_REF_TAG,
    GIT_REPOSITORY_TAG,
    RUN_ID_TAG,
)
from mlplane_registry.registration.reading import ArtifactReader, Digest, ReadFailed
from mlplane_registry.registration.tracking import (
    TrackingRefused,
    TrackingServer,
    TrackingUnavailable,
)
from mlplane_registry.service import RegistryService
from mlplane_registry.store import RegistrationJob, RegistrationStore, RegistryTables

_log = logging.getLogger("mlplane.registry")
TRACKING_SETTING = "MLPLANE_REGISTRY_MLFLOW_TRACKING_URI"
TRACKING_LOCATIONS_SETTING = "MLPLANE_REGISTRY_MLFLOW_TRACKING_LOCATIONS"


@dataclass(frozen=True, slots=True)
class RegistrationConfig:
    concurrency: int
    lease_s: float
    poll_s: float
    attempts: int


class Unregistrable(Exception):
    """The version cannot be registered: the message says why and what to do."""


class RegistrationWorker:
    """Registers pending versions of one hosted registry: `run()` until cancelled."""

    def __init__(
        self,
        service_name: str,
        uow_factory: UnitOfWorkFactory,
        tables: RegistryTables,
        locations: TeamArtifactLocations,
        reader: ArtifactReader,
        tracking: TrackingServer | None,
        config: RegistrationConfig,
    ) -> None:
        self._uow_factory = uow_factory
        self._tables = tables
        self._locations = locations
        self._reader = reader
        self._tracking = tracking
        self._config = config
        self._worker: JobWorker[RegistrationJob, str] = JobWorker(
            service_name,
            "registration",
            self,
            concurrency=config.concurrency,
            lease_s=config.lease_s,
            poll_s=config.poll_s,
        )

    def _service(self, uow: UnitOfWork) -> RegistryService:
        return RegistryService(uow, self._tables, self._locations)

    def wake(self) -> None:
        """Look for work now (call once the version is committed: `uow.after_commit`)."""
        self._worker.wake()

    async def run(self) -> None:
        await self._worker.run()

    async def run_once(self) -> str | None:
        """Claim and run one job inline; its outcome, None when none was waiting."""
        return await self._worker.run_once()

    # -- the runtime's LeasedJobs -----------------------------------------------------

    async def claim(self, request: ClaimRequest) -> Sequence[RegistrationJob]:
        claimed: list[RegistrationJob] = []
        async with self._uow_factory() as uow:
            store = RegistrationStore(uow.session, self._tables)
            while len(claimed) < request.limit:
                job = await store.claim(request.lease_s)
                if job is None:
                    break
                claimed.append(job)
            await uow.commit()
        return claimed

    async def renew(self, job: RegistrationJob, lease_s: float) -> bool:
        async with self._uow_factory() as uow:
            renewed = await RegistrationStore(uow.session, self._tables).renew(
                job.version_id, lease_s
            )
            await uow.commit()
        return renewed

    async def release(self, job: RegistrationJob) -> None:
        await self._release(job, "the registry stopped before the registration finished", 0)

    def describe(self, job: RegistrationJob) -> JobInfo:
        return JobInfo(
            id=str(job.version_id),
            trace=JobTrace(job.traceparent, job.tracestate),
            attributes={
                "mlplane.team": job.team,
                "mlplane.model": job.model,
                "mlplane.model_version": job.version,
            },
        )

    async def next_due_in(self) -> float | None:
        async with self._uow_factory() as uow:
            return await RegistrationStore(uow.session, self._tables).next_due_in()

    async def run_job(self, job: RegistrationJob) -> str:
        """Register one version; `ready`, `failed` or `retried`."""
        try:
            artifact, run, run_id = await self._verify(job)
        except Unregistrable as exc:
            await self._fail(job, str(exc))
            return "failed"
        except ReadFailed as exc:
            if exc.retryable and job.attempts < self._config.attempts:
                await self._release(job, exc.message, _backoff_s(job.attempts))
                return "retried"
            await self._fail(job, _gave_up(exc.message, exc.retryable, job.attempts))
            return "failed"
        inputs = job.inputs
        lineage = lineage_of(
            inputs.get("given") or {},
            inputs.get("run_link"),
            run,
            repository_tag=GIT_REPOSITORY_TAG,
            commit_tag=COMMIT_TAG,
            ci_run_tag=CI_RUN_URL_TAG,
            ref_tag=GIT_REF_TAG,
        )
        message = (
            "artifact verified by the registry"
            if lineage.attested
            else "artifact verified by the registry; unattested: no git commit and CI run "
            "were given (mlplane.* tags, run_link) or found on the MLflow run, so "
            "environments that require lineage (prod by default) will refuse it"
        )
        async with self._uow_factory() as uow:
            await self._service(uow).complete_registration(
                job.version_id,
                artifact,
                lineage,
                message,
                {RUN_ID_TAG: run_id} if run_id else None,
            )
            await uow.commit()
        return "ready"

    # -- one registration -------------------------------------------------------------

    async def _verify(self, job: RegistrationJob) -> tuple[Artifact, RunFacts | None, str | None]:
        try:
            source = parse_source(job.source)
        except SourceRefused as exc:
            raise Unregistrable(exc.detail) from exc
        uri, run, run_id = await self._resolve(job, source)
        async with self._uow_factory() as uow:
            verified = await self._service(uow).find_verified_artifact(uri)
        declared = job.inputs.get("declared") or None
        if verified is not None and (verified.team, verified.model) == (job.team, job.model):
            digest = Digest(verified.size_bytes, verified.sha256, None, 1)
        elif self._locations.allows(job.team, uri):
            digest = await self._reader.digest(uri)
        else:
            raise Unregistrable(
                f"{uri} is not in team {job.team}'s space, so the registry did not read it: "
                "register an upload completed through the registry for this model, an "
                f"s3:// object under a location configured for the team ({TEAM_LOCATIONS_SETTING})"
                f", or a tracking server artifact under one of the team's "
                f"{TRACKING_LOCATIONS_SETTING}"
            )
        if declared is not None and (declared.get("size"), declared.get("sha256")) != (
            digest.size,
            digest.sha256,
        ):
            raise Unregistrable(
                f"{uri} is {digest.size} bytes with sha256 {digest.sha256}, not the declared "
                f"{declared.get('size')} bytes with sha256 {declared.get('sha256')}: declare what "
                "was uploaded, or leave mlplane.sha256 and mlplane.size_bytes out"
            )
        return Artifact(uri, digest.size, digest.sha256, _media_type(job, uri, digest)), run, run_id

    async def _resolve(
        self, job: RegistrationJob, source: LocationUri | RunArtifacts | LoggedModel | object
    ) -> tuple[str, RunFacts | None, str | None]:
        """The location the source stands for, and the MLflow run it came from (if known)."""
        run_id: str | None = job.inputs.get("run_id") or None
        if isinstance(source, LocationUri):
            uri = source.uri
        elif isinstance(source, RunArtifacts | LoggedModel):
            tracking = self._require_tracking(job.source)
            try:
                if isinstance(source, RunArtifacts):
                    run_id = source.run_id
                    uri = await self._run_artifacts(tracking, source)
                else:
                    logged = await tracking.logged_model(source.model_id)
                    uri = logged.artifact_uri
                    run_id = run_id or logged.source_run_id
            except TrackingUnavailable as exc:
                raise ReadFailed(str(exc), retryable=True) from exc
            except TrackingRefused as exc:
                raise Unregistrable(f"cannot resolve {job.source}: {exc}") from exc
            if not (uri.startswith("mlflow-artifacts:/") or uri.startswith("s3://")):
                raise Unregistrable(
                    f"{job.source} resolves to {uri or 'nothing'}, which the registry cannot "
                    "read: run the tracking server with --serve-artifacts (mlflow-artifacts:/) "
                    "or an s3:// artifact root"
                )
        else:
            assert not isinstance(source, RegisteredVersion)
            raise Unregistrable(f"cannot register {job.source} from the registration worker")
        return uri, await self._run_facts(run_id), run_id

    @staticmethod
    async def _run_artifacts(tracking: TrackingServer, source: RunArtifacts) -> str:
        """`runs:/<id>/<path>`: as MLflow 3 resolves it, the run's logged model named
        `path` when there is one, else `path` under the run's artifact root."""
        run = await tracking.run(source.run_id)
        for model_id in run.model_ids:
            logged = await tracking.logged_model(model_id)
            if source.path and logged.name == source.path:
                return logged.artifact_uri
        return f"{run.artifact_uri.rstrip('/')}/{source.path}".rstrip("/")

    async def _run_facts(self, run_id: str | None) -> RunFacts | None:
        if run_id is None or self._tracking is None:
            return None
        try:
            return (await self._tracking.run(run_id)).facts
        except TrackingUnavailable as exc:
            raise ReadFailed(str(exc), retryable=True) from exc
        except TrackingRefused:
            return None  # not a run of this tracking server: no lineage from it

    def _require_tracking(self, source: str) -> TrackingServer:
        if self._tracking is None:
            raise Unregistrable(
                f"{source} is an MLflow tracking server's, and this registry has none "
                f"configured ({TRACKING_SETTING}): set it, or register an s3:// source"
            )
        return self._tracking

    async def _fail(self, job: RegistrationJob, message: str) -> None:
        _log.warning(
            "registration of %s/%s v%s failed: %s", job.team, job.model, job.version, message
        )
        async with self._uow_factory() as uow:
            await self._service(uow).fail_registration(job.version_id, message[:4000])
            await uow.commit()

    async def _release(self, job: RegistrationJob, error: str, delay_s: float) -> None:
        async with self._uow_factory() as uow:
            await RegistrationStore(uow.session, self._tables).release(
                job.version_id, error[:4000], delay_s
            )
            await uow.commit()


def _media_type(job: RegistrationJob, uri: str, digest: Digest) -> str | None:
    """The artifact's media type: a directory's is the tree type whatever was given (the
    builder reads and checks it as a directory), a file's what was given, never the
    tree type. Raises `Unregistrable`."""
    given: str | None = (job.inputs.get("given") or {}).get("mlplane.media_type") or None
    if digest.media_type == ARTIFACT_TREE_MEDIA_TYPE:
        return ARTIFACT_TREE_MEDIA_TYPE
    if given == ARTIFACT_TREE_MEDIA_TYPE:
        raise Unregistrable(
            f"{uri} is a single file, and mlplane.media_type says {ARTIFACT_TREE_MEDIA_TYPE} "
            "(a directory): leave mlplane.media_type out, or give the file's own type"
        )
    return given or digest.media_type


def _backoff_s(attempts: int) -> float:
    return float(min(300, 2 ** max(0, attempts)))


def _gave_up(message: str, retryable: bool, attempts: int) -> str:
    if not retryable:
        return message
    return f"{message} (gave up after {attempts} tries; create the version again once it answers)"


WakeRegistration = Callable[[], None]
