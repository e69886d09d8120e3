"""The deployer's use cases on one unit of work; none commits (the route's or message's
scope does, or the job worker's own unit of work).

A request is decided by the foundations' `evaluate` with the facts the deployer keeps
(the digest's latest scan, the version's phase in the previous environment, approvals,
lineage, the time). Allowed: a pending deployment queued for the job worker. Missing
only approvals: a pending deployment waiting for them. Anything else: a denial listing
every reason. Every decision is stored with the policy version it was made under;
every phase change is a history entry naming who caused it and a
`deployment.status_changed` event in the outbox.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from mlplane_contracts import events as ev
from mlplane_contracts.events import DeploymentPhase
from mlplane_runtime.caller import Caller
from mlplane_runtime.jobs import JobTrace
from mlplane_runtime.uow import UnitOfWork

from mlplane_deployer.domain.deployments import (
    PROMOTE_FROM,
    ROLLBACK_FROM,
    Deployment,
    DeploymentAction,
    DeploymentAsk,
    HistoryEntry,
    HistoryKind,
    Work,
    WorkState,
    waits_only_for_approvals,
)
from mlplane_deployer.domain.errors import (
    AliasUnknown,
    DeploymentDenied,
    DeploymentNotFound,
    DeploymentStateConflict,
    RequesterCannotApprove,
    UnknownEnvironment,
)
from mlplane_deployer.domain.phases import transition
from mlplane_deployer.domain.policy import (
    Approval,
    DenialCode,
    DenialReason,
    DeploymentFacts,
    DeploymentPolicy,
    DeploymentRequest,
    Lineage,
    PolicyDecision,
    evaluate,
)
from mlplane_deployer.policies import PolicyService
from mlplane_deployer.store import DeployerTables, DeploymentFilter, DeploymentStore

DEPLOYER = "service:deployer"
"""Who causes what the deployer does by itself (a commit landing, a retry giving up)."""
# Alias-following and gateway requests name their deployment by the event: redelivered
# or replayed, the same event asks for the same deployment.
_EVENT_DEPLOYMENTS = uuid.UUID("0f6f2a2e-5d59-4d3c-9d7e-6c1f1b0c4a11")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """`deployment` (None when denied), whether this call created it, the decision made
    (None when the ask repeated an existing deployment) and, when denied, the error."""

    deployment: Deployment | None
    created: bool
    decision: PolicyDecision | None = None
    denial: DeploymentDenied | None = None


@dataclass(frozen=True, slots=True)
class DeploymentView:
    deployment: Deployment
    history: list[HistoryEntry]
    approvals: list[tuple[Approval, datetime]]


@dataclass(frozen=True, slots=True)
class JobPlan:
    """What a claimed deployment's job needs besides the deployment: how the environment
    serves, the approvals counted, and, for a rollback, the version it returns to."""

    deployment: Deployment
    serving: str
    returns_to: Deployment | None


class DeploymentService:
    def __init__(
        self,
        uow: UnitOfWork,
        tables: DeployerTables,
        *,
        clock: Callable[[], datetime] = utc_now,
        cluster_configured: bool = False,
    ) -> None:
        self._uow = uow
        self._store = DeploymentStore(uow.session, tables)
        self._clock = clock
        self._cluster = cluster_configured
        self.policies = PolicyService(self._store)

    # -- asking -------------------------------------------------------------------------

    async def request(self, ask: DeploymentAsk, *, source: str = "api") -> RequestOutcome:
        """Decide `ask` and record a pending deployment unless denied.

        The same ask again (same id, idempotency key, or an active deployment of the
        same version and environment) answers the existing deployment. Raises
        `UnknownEnvironment` when the team has no such environment.
        """
        existing = await self._store.find_same(ask)
        if existing is not None:
            return RequestOutcome(existing, created=False)
        policy = (await self.policies.current(ask.team)).policy
        policy.environments.get(ask.environment)
        facts = await self._store.version_facts(ask.team, ask.model, ask.version)
        if facts is None or facts.digest is None or facts.image_repository is None:
            decision = PolicyDecision(
                team=ask.team,
                environment=ask.environment,
                policy_version=policy.version,
                decided_at=self._clock(),
                reasons=(
                    DenialReason(
                        DenialCode.IMAGE_UNKNOWN,
                        f"no image of {ask.model} v{ask.version} is known: it was not built",
                    ),
                ),
                counted_approvals=(),
            )
            return await self._denied(ask, decision, source)
        decision = await self._decide(policy, ask, facts.digest, ())
        if not decision.allowed and not waits_only_for_approvals(decision):
            return await self._denied(ask, decision, source)
        work = Work.DEPLOY if decision.allowed else Work.AWAITING_APPROVAL
        trace = JobTrace.current()
        deployment = await self._store.insert_deployment(
            ask.deployment_id or uuid.uuid4(),
            ask,
            image_repository=facts.image_repository,
            digest=facts.digest,
            policy_version=decision.policy_version,
            approvals=decision.counted_approvals,
            work=work,
            message=_waiting(decision),
            traceparent=trace.traceparent,
            tracestate=trace.tracestate,
        )
        if deployment is None:  # a concurrent identical ask won the insert
            again = await self._store.find_same(ask)
            if again is None:
                raise DeploymentStateConflict("a concurrent request holds this deployment")
            return RequestOutcome(again, created=False)
        await self._store.record_decision(ask, decision, deployment_id=deployment.id, source=source)
        now = self._clock()
        await self._history(deployment, HistoryKind.REQUESTED, ask.requested_by, ask.reason, now)
        await self._store.add_history(deployment.id, _decided(decision, ask.requested_by))
        await self._phase_entry(deployment, None, ask.requested_by, deployment.message, now)
        self._emit(deployment, None)
        return RequestOutcome(deployment, created=True, decision=decision)

    async def request_alias(
        self, team: str, model: str, alias: str, ask: DeploymentAsk
    ) -> RequestOutcome:
        """`ask` with the version `alias` points at. Raises `AliasUnknown`."""
        version = await self._store.alias_version(team, model, alias)
        if version is None:
            raise AliasUnknown(f"model {model!r} has no alias {alias!r} pointing at a version")
        return await self.request(_with_version(ask, version))

    async def approve(self, team: str, deployment_id: UUID, caller: Caller) -> DeploymentView:
        """Record `caller`'s approval and decide again; queued once the policy allows it.

        Raises `DeploymentNotFound`, `RequesterCannotApprove` (403) for the requester,
        `DeploymentStateConflict` for a deployment past `pending`.
        """
        deployment = await self._locked(team, deployment_id)
        if caller.principal == deployment.requested_by:
            raise RequesterCannotApprove(
                f"{caller.principal} requested this deployment and cannot approve it"
            )
        if deployment.phase is not DeploymentPhase.PENDING:
            raise DeploymentStateConflict(
                f"the deployment is {deployment.phase.value}; approvals count before it commits",
                phase=deployment.phase.value,
            )
        if await self._store.add_approval(deployment.id, caller.principal, caller.scopes):
            await self._history(deployment, HistoryKind.APPROVED, caller.principal, None)
        if deployment.work is Work.AWAITING_APPROVAL:
            deployment = await self._decide_again(deployment)
        return await self._view(deployment)

    async def promote(self, team: str, deployment_id: UUID, by: str) -> RequestOutcome:
        """Ask the same version for the environment after this one, through the same rules.

        Raises `DeploymentNotFound`, `DeploymentStateConflict` before the deployment is
        committed or from the last environment.
        """
        deployment = await self._get(team, deployment_id)
        if deployment.phase not in PROMOTE_FROM:
            raise DeploymentStateConflict(
                f"a {deployment.phase.value} deployment is not promoted",
                phase=deployment.phase.value,
            )
        policy = (await self.policies.current(team)).policy
        following = policy.environments.next(deployment.environment)
        if following is None:
            raise DeploymentStateConflict(f"{deployment.environment} is the last environment")
        ask = DeploymentAsk(
            team=team,
            model=deployment.model,
            version=deployment.version,
            environment=following.name,
            requested_by=by,
            action=DeploymentAction.PROMOTE,
            reason=f"promoted from {deployment.environment} ({deployment.id})",
        )
        return await self.request(ask)

    async def rollback(self, team: str, deployment_id: UUID, by: str) -> DeploymentView:
        """Queue a revert commit of the deployment's change (repeating it changes nothing).

        Raises `DeploymentNotFound`, `DeploymentStateConflict` when nothing was committed
        or its commit is still being made.
        """
        deployment = await self._locked(team, deployment_id)
        if deployment.work is Work.ROLLBACK or deployment.phase is DeploymentPhase.ROLLED_BACK:
            return await self._view(deployment)
        if deployment.phase not in ROLLBACK_FROM or deployment.gitops_commit is None:
            raise DeploymentStateConflict(
                f"a {deployment.phase.value} deployment has no commit to revert",
                phase=deployment.phase.value,
            )
        updated = await self._store.update(
            deployment.id,
            work=Work.ROLLBACK.value,
            work_state=WorkState.QUEUED.value,
            attempts=0,
            not_before=None,
            rolled_back_by=by,
            message="rollback queued",
        )
        await self._history(deployment, HistoryKind.ROLLBACK_REQUESTED, by, None)
        return await self._view(updated)

    # -- reading ------------------------------------------------------------------------

    async def get(self, team: str, deployment_id: UUID) -> DeploymentView:
        """Raises `DeploymentNotFound` (another team's too)."""
        return await self._view(await self._get(team, deployment_id))

    async def list_deployments(
        self, where: DeploymentFilter, *, limit: int, before_seq: int | None
    ) -> list[tuple[int, Deployment]]:
        return await self._store.list_deployments(where, limit=limit, before_seq=before_seq)

    # -- what events teach --------------------------------------------------------------

    async def learn_version(self, data: ev.ModelVersionRegistered) -> None:
        await self._store.record_lineage(
            data.team,
            data.model,
            data.version,
            commit_sha=data.lineage.commit_sha,
            ci_run_url=str(data.lineage.ci_run_url),
            registered_at=data.registered_at,
        )

    async def learn_image(self, data: ev.ImageBuilt) -> None:
        await self._store.record_image(
            data.team,
            data.model,
            data.version,
            repository=data.image.repository,
            digest=data.image.digest,
            built_at=data.built_at,
        )

    async def learn_scan(self, data: ev.ImageScanned) -> None:
        # The scan names the image too: a version whose image.built was missed still deploys.
        await self._store.record_image(
            data.team,
            data.model,
            data.version,
            repository=data.image.repository,
            digest=data.image.digest,
            built_at=datetime.min.replace(tzinfo=UTC),
        )
        await self._store.record_scan(
            data.team,
            data.image.digest,
            data.verdict.value,
            data.policy_version or 0,
            data.scanned_at,
        )

    async def on_requested(self, event_id: str, data: ev.DeploymentRequested) -> RequestOutcome:
        """The gateway's `deployment.requested`, through the same rules; a denial is a
        `rejected` status change carrying every reason."""
        ask = DeploymentAsk(
            team=data.team,
            model=data.model,
            version=data.version,
            environment=data.environment.value,
            requested_by=data.requested_by,
            reason=data.reason,
            deployment_id=data.deployment_id,
        )
        return await self._request_for_event(ask, "event")

    async def on_alias_changed(
        self, event_id: str, data: ev.ModelAliasChanged
    ) -> RequestOutcome | None:
        """Remember where the alias points; when an environment follows it, ask for the
        deployment (requested by whoever moved the alias, so they cannot approve it)."""
        newer = await self._store.record_alias(
            data.team, data.model, data.alias, data.version, data.changed_at
        )
        if not newer or data.version is None:
            return None
        policy = (await self.policies.current(data.team)).policy
        spec = policy.environments.following(data.alias)
        if spec is None:
            return None
        ask = DeploymentAsk(
            team=data.team,
            model=data.model,
            version=data.version,
            environment=spec.name,
            requested_by=data.changed_by,
            action=DeploymentAction.ALIAS,
            reason=f"{spec.name} follows alias {data.alias}, moved to v{data.version}",
            deployment_id=uuid.uuid5(_EVENT_DEPLOYMENTS, f"alias:{event_id}"),
        )
        return await self._request_for_event(ask, "alias")

    # -- the job's outcomes (the worker's own unit of work) ------------------------------

    async def plan(self, deployment: Deployment) -> JobPlan:
        policy = (await self.policies.current(deployment.team)).policy
        try:
            serving = policy.environments.get(deployment.environment).rules.serving.value
        except UnknownEnvironment:
            serving = "kustomize"  # the environment was removed since: render as before
        returns_to = None
        if deployment.work is Work.ROLLBACK:
            returns_to = await self._store.previous_in_environment(deployment)
        return JobPlan(deployment, serving, returns_to)

    async def record_committed(
        self, deployment: Deployment, owner: str, commit: str
    ) -> Deployment | None:
        """The deployment's commit landed: `committed`. None when the lease was lost."""
        held = await self._store.holds_lease(deployment.id, owner)
        if held is None:
            return None
        message = (
            "committed to the GitOps repository; the cluster syncs it"
            if self._cluster
            else "committed to the GitOps repository; no cluster is configured, so it stops here"
        )
        return await self._move(
            held,
            DeploymentPhase.COMMITTED,
            DEPLOYER,
            message,
            gitops_commit=commit,
            **_work_done(),
        )

    async def record_rolled_back(
        self, deployment: Deployment, owner: str, commit: str
    ) -> Deployment | None:
        """The revert commit landed: `rolled_back`. None when the lease was lost."""
        held = await self._store.holds_lease(deployment.id, owner)
        if held is None:
            return None
        return await self._move(
            held,
            DeploymentPhase.ROLLED_BACK,
            held.rolled_back_by or DEPLOYER,
            f"reverted by commit {commit}",
            rollback_commit=commit,
            **_work_done(),
        )

    async def record_failure(
        self,
        deployment: Deployment,
        owner: str,
        reason: str,
        *,
        retryable: bool,
        max_attempts: int,
        retry_delay_s: float,
    ) -> Deployment | None:
        """A try failed: queued again after a backoff while tries remain and the cause may
        pass; else a deployment `failed` (a rollback stays where it was, saying why)."""
        held = await self._store.holds_lease(deployment.id, owner)
        if held is None:
            return None
        await self._history(held, HistoryKind.WORK_FAILED, DEPLOYER, reason)
        if retryable and held.attempts < max_attempts:
            delay = retry_delay_s * 2 ** (held.attempts - 1)
            return await self._store.update(
                held.id,
                work_state=WorkState.QUEUED.value,
                not_before=self._clock() + timedelta(seconds=delay),
                lease_owner=None,
                lease_expires_at=None,
                message=f"try {held.attempts} failed, retried in {delay:.0f} s: {reason}",
            )
        if held.work is Work.ROLLBACK:
            return await self._store.update(
                held.id, message=f"rollback failed: {reason}", **_work_done()
            )
        return await self._move(held, DeploymentPhase.FAILED, DEPLOYER, reason, **_work_done())

    async def observe_phase(
        self, deployment_id: UUID, phase: DeploymentPhase, caused_by: str, reason: str | None
    ) -> Deployment | None:
        """A phase the cluster reports (the Argo CD watch's seam): recorded and emitted
        when it is a change. Raises `DeploymentNotFound`, `InvalidPhaseTransition`."""
        deployment = await self._store.get(deployment_id, for_update=True)
        if deployment is None:
            raise DeploymentNotFound(f"no deployment {deployment_id}")
        if transition(deployment.phase, phase, caused_by=caused_by, reason=reason) is None:
            return None
        return await self._move(deployment, phase, caused_by, reason)

    # -- inside -------------------------------------------------------------------------

    async def _decide(
        self,
        policy: DeploymentPolicy,
        ask: DeploymentAsk,
        digest: str,
        approvals: tuple[Approval, ...],
    ) -> PolicyDecision:
        previous = policy.environments.previous(ask.environment)
        facts = await self._store.version_facts(ask.team, ask.model, ask.version)
        return evaluate(
            policy,
            DeploymentRequest(
                ask.team, ask.model, ask.version, ask.environment, digest, ask.requested_by
            ),
            DeploymentFacts(
                now=self._clock(),
                scan=await self._store.scan_of(ask.team, digest),
                current_scan_policy_version=await self._store.current_scan_policy_version(ask.team),
                previous_phase=None
                if previous is None
                else await self._store.latest_phase(
                    ask.team, ask.model, ask.version, previous.name
                ),
                approvals=approvals,
                lineage=facts.lineage if facts is not None else Lineage(),
            ),
        )

    async def _decide_again(self, deployment: Deployment) -> Deployment:
        ask = DeploymentAsk(
            deployment.team,
            deployment.model,
            deployment.version,
            deployment.environment,
            deployment.requested_by,
        )
        policy = (await self.policies.current(deployment.team)).policy
        approvals = tuple(a for a, _ in await self._store.approvals_of(deployment.id))
        decision = await self._decide(policy, ask, deployment.digest, approvals)
        await self._store.record_decision(
            ask, decision, deployment_id=deployment.id, source="approval"
        )
        await self._store.add_history(deployment.id, _decided(decision, DEPLOYER))
        if decision.allowed:
            return await self._store.update(
                deployment.id,
                work=Work.DEPLOY.value,
                work_state=WorkState.QUEUED.value,
                policy_version=decision.policy_version,
                approvals=list(decision.counted_approvals),
                message="approved; queued to render and commit",
            )
        return await self._store.update(
            deployment.id,
            policy_version=decision.policy_version,
            approvals=list(decision.counted_approvals),
            message="; ".join(r.detail for r in decision.reasons),
        )

    async def _denied(
        self, ask: DeploymentAsk, decision: PolicyDecision, source: str
    ) -> RequestOutcome:
        decision_id = await self._store.record_decision(
            ask, decision, deployment_id=None, source=source
        )
        denial = DeploymentDenied(
            f"{ask.model} v{ask.version} may not deploy to {ask.environment}: "
            + "; ".join(r.detail for r in decision.reasons),
            environment=ask.environment,
            policy_version=decision.policy_version,
            decision_id=decision_id,
            reasons=[{"code": r.code.value, "detail": r.detail} for r in decision.reasons],
        )
        return RequestOutcome(None, created=False, decision=decision, denial=denial)

    async def _request_for_event(self, ask: DeploymentAsk, source: str) -> RequestOutcome:
        try:
            outcome = await self.request(ask, source=source)
        except UnknownEnvironment as exc:
            outcome = RequestOutcome(None, False, denial=DeploymentDenied(exc.detail))
        if outcome.denial is not None and ask.deployment_id is not None:
            self._uow.emit(
                ev.DeploymentStatusChanged(
                    deployment_id=ask.deployment_id,
                    team=ask.team,
                    model=ask.model,
                    version=ask.version,
                    environment=ev.Environment(ask.environment),
                    phase=DeploymentPhase.REJECTED,
                    message=outcome.denial.detail[:4000],
                    changed_at=self._clock(),
                ),
                subject=f"deployments/{ask.deployment_id}",
            )
        return outcome

    async def _move(
        self,
        deployment: Deployment,
        phase: DeploymentPhase,
        caused_by: str,
        message: str | None,
        **values: object,
    ) -> Deployment:
        change = transition(deployment.phase, phase, caused_by=caused_by, reason=message)
        if change is None:
            return await self._store.update(deployment.id, message=message, **values)
        updated = await self._store.update(
            deployment.id, phase=phase.value, message=message, **values
        )
        await self._phase_entry(updated, deployment.phase, caused_by, message)
        self._emit(updated, deployment.phase)
        return updated

    def _emit(self, deployment: Deployment, previous: DeploymentPhase | None) -> None:
        self._uow.emit(
            ev.DeploymentStatusChanged(
                deployment_id=deployment.id,
                team=deployment.team,
                model=deployment.model,
                version=deployment.version,
                environment=ev.Environment(deployment.environment),
                phase=deployment.phase,
                previous_phase=previous,
                image=ev.ImageReference(
                    repository=deployment.image_repository, digest=deployment.digest
                ),
                gitops_commit=deployment.rollback_commit or deployment.gitops_commit,
                message=None if deployment.message is None else deployment.message[:4000],
                changed_at=self._clock(),
            ),
            subject=deployment.subject,
        )

    async def _history(
        self,
        deployment: Deployment,
        kind: HistoryKind,
        caused_by: str,
        detail: str | None,
        at: datetime | None = None,
    ) -> None:
        await self._store.add_history(
            deployment.id, HistoryEntry(at or self._clock(), kind, caused_by, detail=detail)
        )

    async def _phase_entry(
        self,
        deployment: Deployment,
        previous: DeploymentPhase | None,
        caused_by: str,
        detail: str | None,
        at: datetime | None = None,
    ) -> None:
        await self._store.add_history(
            deployment.id,
            HistoryEntry(
                at or self._clock(),
                HistoryKind.PHASE,
                caused_by,
                phase=deployment.phase,
                previous_phase=previous,
                detail=detail,
                policy_version=deployment.policy_version,
            ),
        )

    async def _get(self, team: str, deployment_id: UUID) -> Deployment:
        found = await self._store.get(deployment_id, team=team)
        if found is None:
            raise DeploymentNotFound(f"no deployment {deployment_id}")
        return found

    async def _locked(self, team: str, deployment_id: UUID) -> Deployment:
        found = await self._store.get(deployment_id, team=team, for_update=True)
        if found is None:
            raise DeploymentNotFound(f"no deployment {deployment_id}")
        return found

    async def _view(self, deployment: Deployment) -> DeploymentView:
        return DeploymentView(
            deployment,
            await self._store.history_of(deployment.id),
            await self._store.approvals_of(deployment.id),
        )


def _work_done() -> dict[str, object]:
    return {
        "work": Work.NONE.value,
        "work_state": WorkState.IDLE.value,
        "lease_owner": None,
        "lease_expires_at": None,
        "not_before": None,
    }


def _waiting(decision: PolicyDecision) -> str | None:
    if decision.allowed:
        return "queued to render and commit"
    return "waiting for approval: " + "; ".join(r.detail for r in decision.reasons)


def _decided(decision: PolicyDecision, by: str) -> HistoryEntry:
    if decision.allowed:
        detail = "allowed"
    elif waits_only_for_approvals(decision):
        detail = "waiting for approvals"
    else:
        detail = "denied"
    return HistoryEntry(
        decision.decided_at,
        HistoryKind.DECIDED,
        by,
        detail=detail,
        policy_version=decision.policy_version,
        reasons=decision.reasons,
    )


def _with_version(ask: DeploymentAsk, version: int) -> DeploymentAsk:
    return dataclasses.replace(ask, version=version)
