"""The deployment worker: render → validate → commit → push, on the runtime's `JobWorker`.

A deployment queued by a request (or an approval, or a rollback) is a job: the worker
claims it under a lease, runs it in a span continuing the trace of what queued it,
lands one GitOps commit (the revert commit for a rollback) and records the outcome and
its `deployment.status_changed` event in a unit of work of its own. Rendering problems
(manifests that do not validate) fail the deployment at once; a remote that does not
answer is retried with backoff. After a push the cluster seam is called, when there is one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence

from mlplane_runtime.errors import MlplaneError
from mlplane_runtime.jobs import ClaimRequest, JobInfo, JobTrace, JobWorker, worker_id
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory

from mlplane_deployer.cluster import ClusterSync, SyncTarget
from mlplane_deployer.domain.deployments import Deployment, Work
from mlplane_deployer.domain.environments import ServingKind
from mlplane_deployer.gitops.message import ChangeAction, DeploymentChange
from mlplane_deployer.gitops.repository import GitOpsRepository
from mlplane_deployer.manifest_scan import ManifestScanGate
from mlplane_deployer.render import render_validated
from mlplane_deployer.render.spec import Canary, GatewayRef, ImageByDigest, RenderSpec, Workload
from mlplane_deployer.service import DeploymentService, JobPlan
from mlplane_deployer.settings import DeployerSettings
from mlplane_deployer.store import DeployerTables, DeploymentStore

_log = logging.getLogger("mlplane.deployer")

ServiceOf = Callable[[UnitOfWork], DeploymentService]

_ACTIONS = {
    "deploy": ChangeAction.DEPLOY,
    "alias": ChangeAction.DEPLOY,
    "promote": ChangeAction.PROMOTE,
}


def _canary(plan: JobPlan) -> Canary | None:
    """The canary split this job's commit renders, when it splits traffic."""
    stable, weight = plan.stable, plan.canary_weight
    if stable is None or weight is None:
        return None
    return Canary(
        Workload(stable.version, ImageByDigest(stable.image_repository, stable.digest)), weight
    )


def _gateway(plan: JobPlan) -> GatewayRef | None:
    g = plan.gateway
    return None if g is None else GatewayRef(g.name, g.namespace, g.hostname)


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`)."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 else None


class DeploymentWorker:
    """Runs the deployer's jobs: `run()` until cancelled, or `run_once()` in tests."""

    def __init__(
        self,
        service: str,
        uow_factory: UnitOfWorkFactory,
        tables: DeployerTables,
        service_of: ServiceOf,
        settings: DeployerSettings,
        repository: GitOpsRepository,
        cluster: ClusterSync | None = None,
        *,
        manifest_scan: ManifestScanGate,
    ) -> None:
        self._manifest_scan = manifest_scan
        self._uow_factory = uow_factory
        self._tables = tables
        self._service_of = service_of
        self._settings = settings
        self._repository = repository
        self._cluster = cluster
        self.owner = worker_id()
        self._worker: JobWorker[Deployment, Deployment | None] = JobWorker(
            service,
            "deployment",
            self,
            concurrency=settings.max_concurrent_jobs,
            lease_s=settings.lease_s,
            poll_s=settings.poll_interval_s,
        )

    def wake(self) -> None:
        """A deployment may be queued: an idle worker looks now."""
        self._worker.wake()

    async def run(self) -> None:
        await self._worker.run()

    async def run_once(self) -> Deployment | None:
        """Claim one due deployment and run it to a recorded outcome; None when none was due."""
        return await self._worker.run_once()

    # -- the runtime's LeasedJobs -------------------------------------------------------

    async def claim(self, request: ClaimRequest) -> Sequence[Deployment]:
        claimed: list[Deployment] = []
        async with self._uow_factory() as uow:
            store = DeploymentStore(uow.session, self._tables)
            while len(claimed) < request.limit:
                found = await store.claim(self.owner, request.lease_s)
                if found is None:
                    break
                claimed.append(found)
            await uow.commit()
        return claimed

    async def renew(self, job: Deployment, lease_s: float) -> bool:
        async with self._uow_factory() as uow:
            held = await DeploymentStore(uow.session, self._tables).renew_lease(
                job.id, self.owner, lease_s
            )
            await uow.commit()
        return held

    async def release(self, job: Deployment) -> None:
        async with self._uow_factory() as uow:
            await DeploymentStore(uow.session, self._tables).release(job.id, self.owner)
            await uow.commit()

    def describe(self, job: Deployment) -> JobInfo:
        return JobInfo(
            id=str(job.id),
            trace=JobTrace(job.traceparent, job.tracestate),
            attributes={
                "mlplane.team": job.team,
                "mlplane.model": job.model,
                "mlplane.model_version": job.version,
                "mlplane.environment": job.environment,
                "mlplane.work": job.work.value,
            },
        )

    async def next_due_in(self) -> float | None:
        async with self._uow_factory.reading() as uow:
            return await DeploymentStore(uow.session, self._tables).next_due_in()

    async def run_job(self, job: Deployment) -> Deployment | None:
        async with self._uow_factory.reading() as uow:
            plan = await self._service_of(uow).plan(job)
        try:
            async with asyncio.timeout(self._settings.job_timeout_s):
                commit = await (
                    self._revert(plan) if job.work is Work.ROLLBACK else self._land(plan)
                )
        except TimeoutError:
            return await self._failed(
                job, f"timed out after {self._settings.job_timeout_s} s", True
            )
        except MlplaneError as exc:
            errors = exc.extensions.get("errors")
            detail = exc.detail + (f": {'; '.join(map(str, errors))}" if errors else "")
            return await self._failed(job, detail, exc.retryable)
        except Exception as exc:
            _log.exception("deployment %s failed unexpectedly", job.id)
            return await self._failed(job, f"{type(exc).__name__}: {exc}", True)
        async with self._uow_factory() as uow:
            service = self._service_of(uow)
            if job.work is Work.ROLLBACK:
                done = await service.record_rolled_back(job, self.owner, commit)
            else:
                done = await service.record_committed(job, self.owner, commit, plan)
            await uow.commit()
        if done is None:
            _log.warning("deployment %s finished after its lease was lost", job.id)
            return None
        if done.work is not Work.NONE:
            self.wake()  # a rollback asked for while this ran is due now
        _log.info(
            "deployment %s of %s/%s v%d to %s: %s at %s",
            job.id,
            job.team,
            job.model,
            job.version,
            job.environment,
            done.phase.value,
            commit,
            extra={"deployment_id": str(job.id), "gitops_commit": commit},
        )
        if self._cluster is not None and job.work is not Work.ROLLBACK:
            await self._sync(done, commit)
        return done

    # -- inside -------------------------------------------------------------------------

    async def _land(self, plan: JobPlan) -> str:
        d = plan.deployment
        spec = RenderSpec(
            team=d.team,
            model=d.model,
            environment=d.environment,
            workload=Workload(d.version, ImageByDigest(d.image_repository, d.digest)),
            serving=ServingKind(plan.serving),
            namespace=self._settings.destination_namespace_for(d.team, d.model, d.environment),
            canary=_canary(plan),
            gateway=_gateway(plan),
        )
        # Rendering and schema validation are CPU work: off the event loop.
        tree = await asyncio.to_thread(render_validated, spec, self._settings.kubernetes_version)
        # Exactly what would be committed, judged by the scanner first: a failed scan is a
        # denial with its reasons, a scanner that does not answer is retried.
        await self._manifest_scan.check(d.team, d.environment, tree.objects)
        action = _ACTIONS.get(d.action.value, ChangeAction.DEPLOY)
        if plan.canary_weight is not None:
            action = ChangeAction.CANARY
        change = self._change(d, plan.change_id, action, canary_weight=plan.canary_weight)
        result = await self._repository.apply(change, tree.files)
        return result.sha

    async def _revert(self, plan: JobPlan) -> str:
        d = plan.deployment
        back = plan.returns_to or d
        change = self._change(back, d.rollback_change_id, ChangeAction.ROLLBACK, requested=d)
        if plan.returns_to is None:
            change = dataclasses.replace(change, removes=True)
        result = await self._repository.revert(change, d.change_ids)
        return result.sha

    def _change(
        self,
        d: Deployment,
        change_id: str,
        action: ChangeAction,
        requested: Deployment | None = None,
        canary_weight: int | None = None,
    ) -> DeploymentChange:
        asked = requested or d
        return DeploymentChange(
            change_id=change_id,
            action=action,
            team=asked.team,
            model=asked.model,
            version=d.version,
            digest=d.digest,
            environment=asked.environment,
            directory=f"teams/{asked.team}/{asked.model}/{asked.environment}",
            requested_by=(asked.rolled_back_by if requested else None) or asked.requested_by,
            approvals=asked.approvals,
            policy_version=asked.policy_version,
            trace_id=trace_id_of(asked.traceparent),
            canary_weight=canary_weight,
        )

    async def _failed(self, job: Deployment, reason: str, retryable: bool) -> Deployment | None:
        settings = self._settings
        async with self._uow_factory() as uow:
            after = await self._service_of(uow).record_failure(
                job,
                self.owner,
                reason,
                retryable=retryable,
                max_attempts=settings.job_attempts,
                retry_delay_s=settings.retry_delay_s,
            )
            await uow.commit()
        _log.warning("deployment %s: %s", job.id, reason, extra={"deployment_id": str(job.id)})
        if after is not None and after.work is not Work.NONE:
            self.wake()  # a slot must be awake for the retry's not_before
        return after

    async def _sync(self, deployment: Deployment, commit: str) -> None:
        assert self._cluster is not None
        target = SyncTarget(
            deployment_id=deployment.id,
            team=deployment.team,
            model=deployment.model,
            environment=deployment.environment,
            version=deployment.version,
            overlay_path=f"teams/{deployment.team}/{deployment.model}/{deployment.environment}/overlay",
            commit=commit,
            repo_url=self._repository.remote,
            revision=self._repository.branch,
            trace_id=trace_id_of(deployment.traceparent),
            phase=deployment.phase,
            image_repository=deployment.image_repository,
            digest=deployment.digest,
        )
        try:
            await self._cluster.after_push(target)
        except Exception:
            _log.exception("deployment %s: the cluster sync failed", deployment.id)
