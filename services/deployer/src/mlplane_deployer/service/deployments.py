"""Asking for deployments (API and events), approving, promoting, rolling back, reading."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

from mlplane_contracts import events as ev
from mlplane_contracts.events import DeploymentPhase
from mlplane_runtime.caller import Caller
from mlplane_runtime.jobs import JobTrace

from mlplane_deployer.domain.deployments import (
    PROMOTE_FROM,
    Deployment,
    DeploymentAction,
    DeploymentAsk,
    HistoryKind,
    Work,
    WorkState,
    waits_only_for_approvals,
)
from mlplane_deployer.domain.errors import (
    AliasUnknown,
    DeploymentDenied,
    DeploymentStateConflict,
    RequesterCannotApprove,
    UnknownEnvironment,
)
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
from mlplane_deployer.service.base import (
    DEPLOYER,
    DeploymentView,
    RequestOutcome,
    decided_entry,
    waiting_message,
    with_version,
)
from mlplane_deployer.service.observations import ClusterObservations
from mlplane_deployer.store import DeploymentFilter

# Alias-following and gateway requests name their deployment by the event: redelivered
# or replayed, the same event asks for the same deployment.
_EVENT_DEPLOYMENTS = uuid.UUID("0f6f2a2e-5d59-4d3c-9d7e-6c1f1b0c4a11")


class DeploymentService(ClusterObservations):
    """The deployer's use cases on one unit of work (see the package docstring)."""

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
        rules = policy.environments.get(ask.environment).rules
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
            message=waiting_message(decision),
            traceparent=trace.traceparent,
            tracestate=trace.tracestate,
            canary_weights=rules.canary_weights if len(rules.canary_weights) > 1 else (),
        )
        if deployment is None:  # a concurrent identical ask won the insert
            again = await self._store.find_same(ask)
            if again is None:
                raise DeploymentStateConflict("a concurrent request holds this deployment")
            return RequestOutcome(again, created=False)
        await self._store.record_decision(ask, decision, deployment_id=deployment.id, source=source)
        now = self._clock()
        await self._history(deployment, HistoryKind.REQUESTED, ask.requested_by, ask.reason, now)
        await self._store.add_history(deployment.id, decided_entry(decision, ask.requested_by))
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
        return await self.request(with_version(ask, version))

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
        return await self._view(await self.queue_rollback(deployment, by, None))

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
        # An unattested version (registered from a bare MLflow source) carries placeholder
        # lineage: recorded as none, so environments asking for lineage refuse it.
        await self._store.record_lineage(
            data.team,
            data.model,
            data.version,
            commit_sha=data.lineage.commit_sha if data.attested else None,
            ci_run_url=str(data.lineage.ci_run_url) if data.attested else None,
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
        await self._store.add_history(deployment.id, decided_entry(decision, DEPLOYER))
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
