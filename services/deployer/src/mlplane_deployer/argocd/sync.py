"""The deployer's `ClusterSync` through Argo CD, and the follower that records phases.

After each pushed commit, `after_push` ensures the model and environment's
`Application` (server-side apply) and tracks it at the commit. `run` (a
`ServiceWorker`) watches the deployer's Applications, maps each status to a phase
(`PhaseFollower`), and records every change through
`DeploymentService.observe_phase` in a unit of work of its own, so each change is a
history entry and a `deployment.status_changed` in the outbox; a commit not healthy
within the environment's timeout is `failed` with the last status seen.

What is followed comes from the database (`resync`): at start (a restart re-tracks
every deployment the cluster may still move) and every `cluster_resync_s` (commits
another replica landed). Several replicas follow the same Applications; the service
records only changes the domain allows, for the revision committed now, newer than
the last recorded, so each change lands once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from kubernetes_asyncio.client import ApiClient
from mlplane_contracts.events import DeploymentPhase as P
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory
from mlplane_runtime.waiting import get_within

from mlplane_deployer.argocd.client import AppliedApplication, ArgoCdApplications
from mlplane_deployer.argocd.connection import kube_api_client
from mlplane_deployer.argocd.follow import (
    CAUSED_BY,
    DELETED_REASON,
    ApplicationPhaseChange,
    PhaseFollower,
)
from mlplane_deployer.argocd.phase_mapping import ArgoStatus
from mlplane_deployer.argocd.watch import MANAGED_BY, ApplicationEvent, ApplicationWatch
from mlplane_deployer.cluster import SyncTarget
from mlplane_deployer.domain.deployments import Deployment, Work
from mlplane_deployer.domain.errors import DeploymentNotFound
from mlplane_deployer.gitops.repository import GitOpsRepository
from mlplane_deployer.render.application import ArgoTarget, application, application_name_of
from mlplane_deployer.render.spec import ImageByDigest, RenderSpec, Workload
from mlplane_deployer.service import DeploymentService
from mlplane_deployer.service.observations import same_revision
from mlplane_deployer.settings import DeployerSettings

log = logging.getLogger("mlplane.deployer.argocd")

ServiceOf = Callable[[UnitOfWork], DeploymentService]


@dataclass(frozen=True, slots=True)
class _Carried:
    """The deployment an Application carries now, at which commit, from which directory."""

    deployment_id: UUID
    revision: str
    directory: str


def _directory(team: str, model: str, environment: str) -> str:
    return f"teams/{team}/{model}/{environment}"


def _as_event(name: str, found: dict[str, Any]) -> ApplicationEvent:
    meta: dict[str, Any] = found.get("metadata") or {}
    return ApplicationEvent(
        "RELISTED",
        name,
        str(meta.get("resourceVersion", "")),
        ArgoStatus.of(found),
        dict(meta.get("labels") or {}),
        found,
    )


def _version_number(resource_version: str | None) -> int | None:
    # The API server's resourceVersions are etcd revisions; compared only when numeric.
    return int(resource_version) if resource_version and resource_version.isdigit() else None


class ArgoCdSync:
    """Ensures Applications after each push (`after_push`) and follows them (`run`).

    `opened()` (the hosting's lifespan) makes the Kubernetes client; `wake` tells
    the deployment worker that work was queued (a canary step, a rollback).
    """

    def __init__(
        self,
        settings: DeployerSettings,
        uow_factory: UnitOfWorkFactory,
        service_of: ServiceOf,
        repository: GitOpsRepository,
        *,
        wake: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._uow_factory = uow_factory
        self._service_of = service_of
        self._repository = repository
        self._target = ArgoTarget(
            repo_url=settings.argocd_repo_url or repository.remote,
            revision=repository.branch,
            argocd_namespace=settings.argocd_namespace,
            project=settings.argocd_project,
            cluster=settings.argocd_destination_server,
        )
        self._wake = wake
        self._clock = clock
        self._follower = PhaseFollower(clock=clock)
        self._carried: dict[str, _Carried] = {}
        self._unchanged: dict[tuple[str, str, str], bool] = {}
        self._inbox: asyncio.Queue[ApplicationEvent] = asyncio.Queue()
        self._api: ApiClient | None = None
        self._applications: ArgoCdApplications | None = None

    @property
    def follower(self) -> PhaseFollower:
        return self._follower

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[None]:
        """The Kubernetes client for the block (the hosting's lifespan)."""
        s = self._settings
        self._api = await kube_api_client(
            kubeconfig=s.kubeconfig, context=s.kube_context, host=s.kube_api_url
        )
        self._applications = ArgoCdApplications(self._api, namespace=s.argocd_namespace)
        try:
            yield
        finally:
            api, self._api, self._applications = self._api, None, None
            await api.close()

    def _opened(self) -> tuple[ApiClient, ArgoCdApplications]:
        if self._api is None or self._applications is None:
            raise RuntimeError("the Argo CD sync is not opened (the hosting's lifespan opens it)")
        return self._api, self._applications

    # -- ClusterSync --------------------------------------------------------------------

    async def after_push(self, target: SyncTarget) -> None:
        """Ensure the Application and follow it at `target.commit`. Raises the
        adapter's errors (`ArgoCdUnavailable`, ...); the next resync tries again."""
        applied = await self._ensure(
            target.team,
            target.model,
            target.environment,
            target.version,
            target.image_repository,
            target.digest,
        )
        name = applied.name
        directory = _directory(target.team, target.model, target.environment)
        self._track(
            name,
            target.deployment_id,
            target.commit,
            target.phase,
            directory,
            target.environment,
        )
        # What Argo CD said before the follower knew this commit is looked at again (and
        # the loop looks at its deadlines again).
        self._inbox.put_nowait(_as_event(name, applied.object))

    async def _ensure(
        self,
        team: str,
        model: str,
        environment: str,
        version: int,
        image_repository: str,
        digest: str,
    ) -> AppliedApplication:
        _, applications = self._opened()
        spec = RenderSpec(
            team=team,
            model=model,
            environment=environment,
            workload=Workload(version, ImageByDigest(image_repository, digest)),
            namespace=self._settings.destination_namespace_for(team, model, environment),
        )
        return await applications.ensure_application(
            application(spec, self._target, f"{spec.directory}/overlay")
        )

    def _track(
        self,
        name: str,
        deployment_id: UUID,
        revision: str,
        phase: P,
        directory: str,
        environment: str,
        elapsed_s: float = 0.0,
    ) -> None:
        self._follower.track(
            name,
            revision=revision,
            phase=phase,
            timeout_s=self._settings.health_timeout_for(environment),
            elapsed_s=elapsed_s,
        )
        self._carried[name] = _Carried(deployment_id, revision, directory)

    # -- following ----------------------------------------------------------------------

    async def run(self) -> None:
        """Follow until cancelled; a failure (the API or the database away) is logged
        and following starts again from the database after a pause."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("argocd: following failed; starting again")
                await asyncio.sleep(min(self._settings.cluster_resync_s, 5.0))

    async def _follow(self) -> None:
        api, _ = self._opened()
        await self.resync(first=True)
        watch = ApplicationWatch(
            api, namespace=self._settings.argocd_namespace, label_selector=MANAGED_BY
        )

        async def pump() -> None:
            async for event in watch.events():
                self._inbox.put_nowait(event)

        pumping = asyncio.create_task(pump())
        next_resync = self._clock() + self._settings.cluster_resync_s
        try:
            while True:
                deadline = self._follower.next_deadline()
                until = next_resync if deadline is None else min(deadline, next_resync)
                item = await get_within(self._inbox, max(0.0, until - self._clock()))
                if pumping.done():
                    pumping.result()  # the watch gave up (401, 403, 404): start again
                if item is not None:
                    await self._follow_newer_tip(item)
                    change = self._follower.observe(item)
                    if change is not None:
                        await self._record(change, _version_number(item.resource_version))
                for expired in self._follower.expire():
                    await self._record(expired, None, timed_out=True)
                if self._clock() >= next_resync:
                    await self.resync()
                    next_resync = self._clock() + self._settings.cluster_resync_s
        finally:
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumping

    async def _record(
        self,
        change: ApplicationPhaseChange,
        resource_version: int | None,
        *,
        timed_out: bool = False,
    ) -> None:
        carried = self._carried.get(change.application)
        if carried is None:
            return
        timeout = self._follower.timeout_s(change.application) if timed_out else None
        try:
            async with self._uow_factory() as uow:
                moved = await self._service_of(uow).observe_phase(
                    carried.deployment_id,
                    change.change.phase,
                    CAUSED_BY,
                    change.change.reason,
                    revision=carried.revision,
                    resource_version=resource_version,
                    timeout_s=timeout,
                    may_roll_back=change.change.reason != DELETED_REASON,
                )
                await uow.commit()
        except DeploymentNotFound:
            self._forget(change.application)
            return
        if moved is None:
            return
        log.info(
            "deployment %s: %s (%s)",
            moved.id,
            moved.phase.value,
            change.change.reason,
            extra={"deployment_id": str(moved.id), "application": change.application},
        )
        if moved.work is not Work.NONE:
            self._wake()

    def _forget(self, name: str) -> None:
        self._follower.forget(name)
        self._carried.pop(name, None)

    async def resync(self, *, first: bool = False) -> None:
        """Follow what the database says the cluster may still move: new commits (from any
        replica) tracked, phases recorded elsewhere taken over (the Application read
        again), finished ones forgotten. On the first, after a start, the watch's list
        reports every Application's status; a commit never followed is ensured."""
        async with self._uow_factory.reading() as uow:
            deployments = await self._service_of(uow).followed()
        now = datetime.now(UTC)
        wanted = {application_name_of(d.team, d.model, d.environment): d for d in deployments}
        for name in list(self._carried):
            if name not in wanted:
                self._forget(name)
        for name, d in wanted.items():
            assert d.gitops_commit is not None
            carried = self._carried.get(name)
            if (
                carried is not None
                and (carried.deployment_id, carried.revision) == (d.id, d.gitops_commit)
                and self._follower.phase(name) is d.phase
            ):
                continue
            elapsed = 0.0 if d.waiting_since is None else (now - d.waiting_since).total_seconds()
            directory = _directory(d.team, d.model, d.environment)
            self._track(name, d.id, d.gitops_commit, d.phase, directory, d.environment, elapsed)
            if first and d.phase is not P.COMMITTED:
                continue  # the watch's first list reports every Application's status
            await self._look_again(name, d)

    async def _look_again(self, name: str, d: Deployment) -> None:
        """Read one Application now (ensuring it when its commit was never followed)."""
        _, applications = self._opened()
        try:
            if d.phase is P.COMMITTED:
                await self._ensure(
                    d.team, d.model, d.environment, d.version, d.image_repository, d.digest
                )
            found = await applications.get_application(name)
        except Exception:
            log.warning("argocd: could not read Application %s", name, exc_info=True)
            return
        if found is not None:
            self._inbox.put_nowait(_as_event(name, found))

    async def _follow_newer_tip(self, event: ApplicationEvent) -> None:
        """Argo CD reports the branch's tip: when a later commit (another model's) left
        this Application's files as the deployment's commit made them, the tip speaks
        for the deployment's commit."""
        carried = self._carried.get(event.name)
        tracked = self._follower.revision(event.name)
        seen = event.status.revision
        if carried is None or tracked is None or not seen or same_revision(tracked, seen):
            return
        key = (carried.revision, seen, carried.directory)
        unchanged = self._unchanged.get(key)
        if unchanged is None:
            try:
                unchanged = await self._repository.unchanged_since(*key)
            except Exception:
                log.warning("argocd: could not compare %s with %s", *key[:2], exc_info=True)
                return
            if len(self._unchanged) > 10_000:
                self._unchanged.clear()
            self._unchanged[key] = unchanged
        if unchanged:
            self._follower.retarget(event.name, seen)
