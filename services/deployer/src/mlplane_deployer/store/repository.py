"""The deployer's repository: every query it runs, on the unit of work's session."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from mlplane_contracts.events import DeploymentPhase, ScanVerdict
from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from mlplane_deployer.domain.deployments import (
    Deployment,
    DeploymentAsk,
    HistoryEntry,
    Work,
    WorkState,
    change_id_of,
)
from mlplane_deployer.domain.policy import (
    Approval,
    DenialReason,
    Lineage,
    PolicyDecision,
    ScanFact,
)
from mlplane_deployer.store.environments import EnvironmentQueries
from mlplane_deployer.store.jobs import JobQueue
from mlplane_deployer.store.rows import deployment_from_row, history_from_row, reasons_json
from mlplane_deployer.store.tables import ACTIVE_PHASES_SQL, DeployerTables


@dataclass(frozen=True, slots=True)
class VersionFacts:
    """What the deployer knows of one model version: its image and its lineage."""

    image_repository: str | None
    digest: str | None
    lineage: Lineage


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    version: int
    document: dict[str, Any]
    created_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeploymentFilter:
    team: str
    model: str | None = None
    environment: str | None = None


class DeploymentStore(EnvironmentQueries, JobQueue):
    """The deployer's repository on one session (the unit of work's)."""

    def __init__(self, session: AsyncSession, tables: DeployerTables) -> None:
        self._session = session
        self._t = tables

    # -- policies -----------------------------------------------------------------------

    async def current_policy(self, team: str) -> StoredPolicy | None:
        p = self._t.policies
        row = (
            await self._session.execute(
                select(p).where(p.c.team == team).order_by(p.c.version.desc()).limit(1)
            )
        ).first()
        if row is None:
            return None
        m = row._mapping
        return StoredPolicy(m["version"], m["document"], m["created_by"], m["created_at"])

    async def insert_policy(
        self, team: str, version: int, document: dict[str, Any], created_by: str
    ) -> bool:
        """Store `version`; False when another writer stored that version first."""
        p = self._t.policies
        result = await self._session.execute(
            insert(p)
            .values(team=team, version=version, document=document, created_by=created_by)
            .on_conflict_do_nothing(constraint="pk_policies")
            .returning(p.c.version)
        )
        return result.first() is not None

    async def lock_team_policy(self, team: str) -> None:
        """Serialize policy edits of one team until the transaction ends."""
        await self._session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext('deployer-policy:' || :team))"),
            {"team": team},
        )

    # -- what events taught -------------------------------------------------------------

    async def record_lineage(
        self,
        team: str,
        model: str,
        version: int,
        *,
        commit_sha: str | None,
        ci_run_url: str | None,
        registered_at: datetime,
    ) -> None:
        v = self._t.model_versions
        stmt = insert(v).values(
            team=team,
            model=model,
            version=version,
            commit_sha=commit_sha,
            ci_run_url=ci_run_url,
            registered_at=registered_at,
        )
        await self._session.execute(
            stmt.on_conflict_do_update(
                constraint="pk_model_versions",
                set_={
                    "commit_sha": stmt.excluded.commit_sha,
                    "ci_run_url": stmt.excluded.ci_run_url,
                    "registered_at": stmt.excluded.registered_at,
                },
            )
        )

    async def record_image(
        self,
        team: str,
        model: str,
        version: int,
        *,
        repository: str,
        digest: str,
        built_at: datetime,
    ) -> None:
        """Keep the newest image of a version (a rebuild announced later wins; an older
        announcement arriving late changes nothing)."""
        v = self._t.model_versions
        stmt = insert(v).values(
            team=team,
            model=model,
            version=version,
            image_repository=repository,
            digest=digest,
            built_at=built_at,
        )
        await self._session.execute(
            stmt.on_conflict_do_update(
                constraint="pk_model_versions",
                set_={
                    "image_repository": stmt.excluded.image_repository,
                    "digest": stmt.excluded.digest,
                    "built_at": stmt.excluded.built_at,
                },
                where=or_(v.c.built_at.is_(None), v.c.built_at <= stmt.excluded.built_at),
            )
        )

    async def version_facts(self, team: str, model: str, version: int) -> VersionFacts | None:
        v = self._t.model_versions
        row = (
            await self._session.execute(
                select(v).where(v.c.team == team, v.c.model == model, v.c.version == version)
            )
        ).first()
        if row is None:
            return None
        m = row._mapping
        return VersionFacts(
            m["image_repository"], m["digest"], Lineage(m["commit_sha"], m["ci_run_url"])
        )

    async def record_scan(
        self, team: str, digest: str, verdict: str, policy_version: int, scanned_at: datetime
    ) -> None:
        """Keep the latest verdict per digest; a verdict older than the one kept is ignored."""
        s = self._t.scans
        stmt = insert(s).values(
            team=team,
            digest=digest,
            verdict=verdict,
            policy_version=policy_version,
            scanned_at=scanned_at,
        )
        await self._session.execute(
            stmt.on_conflict_do_update(
                constraint="pk_scans",
                set_={
                    "verdict": stmt.excluded.verdict,
                    "policy_version": stmt.excluded.policy_version,
                    "scanned_at": stmt.excluded.scanned_at,
                },
                where=s.c.scanned_at <= stmt.excluded.scanned_at,
            )
        )

    async def scan_of(self, team: str, digest: str) -> ScanFact | None:
        s = self._t.scans
        row = (
            await self._session.execute(select(s).where(s.c.team == team, s.c.digest == digest))
        ).first()
        if row is None:
            return None
        m = row._mapping
        return ScanFact(m["digest"], ScanVerdict(m["verdict"]), m["policy_version"])

    async def current_scan_policy_version(self, team: str) -> int:
        """The newest scan policy version any verdict of the team was decided under."""
        s = self._t.scans
        found = (
            await self._session.execute(
                select(func.max(s.c.policy_version)).where(s.c.team == team)
            )
        ).scalar()
        return int(found or 0)

    async def record_alias(
        self, team: str, model: str, alias: str, version: int | None, changed_at: datetime
    ) -> bool:
        """Where `alias` points now; False when a later move is already recorded."""
        a = self._t.aliases
        stmt = insert(a).values(
            team=team, model=model, alias=alias, version=version, changed_at=changed_at
        )
        result = await self._session.execute(
            stmt.on_conflict_do_update(
                constraint="pk_aliases",
                set_={"version": stmt.excluded.version, "changed_at": stmt.excluded.changed_at},
                where=a.c.changed_at <= stmt.excluded.changed_at,
            ).returning(a.c.alias)
        )
        return result.first() is not None

    async def alias_version(self, team: str, model: str, alias: str) -> int | None:
        a = self._t.aliases
        return (
            await self._session.execute(
                select(a.c.version).where(a.c.team == team, a.c.model == model, a.c.alias == alias)
            )
        ).scalar()

    # -- deployments --------------------------------------------------------------------

    async def insert_deployment(
        self,
        deployment_id: UUID,
        ask: DeploymentAsk,
        *,
        image_repository: str,
        digest: str,
        policy_version: int,
        approvals: Sequence[str],
        work: Work,
        message: str | None,
        traceparent: str | None,
        tracestate: str | None,
        canary_weights: Sequence[int] = (),
    ) -> Deployment | None:
        """A new pending deployment; None when an active one of the same version and
        environment, or one with the same idempotency key or id, exists already."""
        d = self._t.deployments
        row = (
            await self._session.execute(
                insert(d)
                .values(
                    id=deployment_id,
                    team=ask.team,
                    model=ask.model,
                    version=ask.version,
                    environment=ask.environment,
                    image_repository=image_repository,
                    digest=digest,
                    requested_by=ask.requested_by,
                    action=ask.action.value,
                    reason=ask.reason,
                    idempotency_key=ask.idempotency_key,
                    phase=DeploymentPhase.PENDING.value,
                    policy_version=policy_version,
                    approvals=list(approvals),
                    work=work.value,
                    work_state=(WorkState.QUEUED if work is Work.DEPLOY else WorkState.IDLE).value,
                    message=message,
                    change_id=change_id_of(deployment_id),
                    traceparent=traceparent,
                    tracestate=tracestate,
                    canary_weights=list(canary_weights),
                )
                .on_conflict_do_nothing()
                .returning(d)
            )
        ).first()
        return None if row is None else deployment_from_row(row)

    async def get(
        self, deployment_id: UUID, *, team: str | None = None, for_update: bool = False
    ) -> Deployment | None:
        d = self._t.deployments
        query = select(d).where(d.c.id == deployment_id)
        if team is not None:
            query = query.where(d.c.team == team)
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        return None if row is None else deployment_from_row(row)

    async def find_same(self, ask: DeploymentAsk) -> Deployment | None:
        """The deployment this ask repeats: same id, same idempotency key, or the active
        one of the same version and environment."""
        d = self._t.deployments
        same = [
            and_(
                d.c.model == ask.model,
                d.c.version == ask.version,
                d.c.environment == ask.environment,
                text(ACTIVE_PHASES_SQL),
            )
        ]
        if ask.idempotency_key is not None:
            same.append(d.c.idempotency_key == ask.idempotency_key)
        if ask.deployment_id is not None:
            same.append(d.c.id == ask.deployment_id)
        query = select(d).where(d.c.team == ask.team, or_(*same)).order_by(d.c.seq.desc()).limit(1)
        row = (await self._session.execute(query)).first()
        return None if row is None else deployment_from_row(row)

    async def latest_phase(
        self, team: str, model: str, version: int, environment: str
    ) -> DeploymentPhase | None:
        """The phase of the newest deployment of this version in `environment`."""
        d = self._t.deployments
        phase = (
            await self._session.execute(
                select(d.c.phase)
                .where(
                    d.c.team == team,
                    d.c.model == model,
                    d.c.version == version,
                    d.c.environment == environment,
                )
                .order_by(d.c.seq.desc())
                .limit(1)
            )
        ).scalar()
        return None if phase is None else DeploymentPhase(phase)

    async def list_deployments(
        self, where: DeploymentFilter, *, limit: int, before_seq: int | None
    ) -> list[tuple[int, Deployment]]:
        """(seq, deployment), newest first."""
        d = self._t.deployments
        query = select(d).where(d.c.team == where.team)
        if where.model is not None:
            query = query.where(d.c.model == where.model)
        if where.environment is not None:
            query = query.where(d.c.environment == where.environment)
        if before_seq is not None:
            query = query.where(d.c.seq < before_seq)
        rows = await self._session.execute(query.order_by(d.c.seq.desc()).limit(limit))
        return [(row._mapping["seq"], deployment_from_row(row)) for row in rows]

    async def update(self, deployment_id: UUID, **values: Any) -> Deployment:
        """Write columns of a deployment the caller holds locked; returns it as stored."""
        d = self._t.deployments
        row = (
            await self._session.execute(
                update(d)
                .where(d.c.id == deployment_id)
                .values(**values, updated_at=func.now())
                .returning(d)
            )
        ).one()
        return deployment_from_row(row)

    # -- approvals, history, decisions --------------------------------------------------

    async def add_approval(
        self, deployment_id: UUID, principal: str, scopes: frozenset[str]
    ) -> bool:
        """False when `principal` approved before (an approval counts once)."""
        a = self._t.approvals
        result = await self._session.execute(
            insert(a)
            .values(deployment_id=deployment_id, principal=principal, scopes=sorted(scopes))
            .on_conflict_do_nothing(constraint="pk_approvals")
            .returning(a.c.principal)
        )
        return result.first() is not None

    async def approvals_of(self, deployment_id: UUID) -> list[tuple[Approval, datetime]]:
        a = self._t.approvals
        rows = await self._session.execute(
            select(a).where(a.c.deployment_id == deployment_id).order_by(a.c.approved_at)
        )
        return [
            (
                Approval(r._mapping["principal"], frozenset(r._mapping["scopes"])),
                r._mapping["approved_at"],
            )
            for r in rows
        ]

    async def add_history(self, deployment_id: UUID, entry: HistoryEntry) -> None:
        h = self._t.history
        await self._session.execute(
            insert(h).values(
                deployment_id=deployment_id,
                at=entry.at,
                kind=entry.kind.value,
                caused_by=entry.caused_by,
                phase=None if entry.phase is None else entry.phase.value,
                previous_phase=None if entry.previous_phase is None else entry.previous_phase.value,
                detail=entry.detail,
                policy_version=entry.policy_version,
                reasons=reasons_json(entry.reasons),
            )
        )

    async def history_of(self, deployment_id: UUID) -> list[HistoryEntry]:
        h = self._t.history
        rows = await self._session.execute(
            select(h).where(h.c.deployment_id == deployment_id).order_by(h.c.id)
        )
        return [history_from_row(row) for row in rows]

    async def record_decision(
        self,
        ask: DeploymentAsk,
        decision: PolicyDecision,
        *,
        deployment_id: UUID | None,
        source: str,
        extra_reasons: tuple[DenialReason, ...] = (),
    ) -> int:
        c = self._t.decisions
        return int(
            (
                await self._session.execute(
                    insert(c)
                    .values(
                        team=ask.team,
                        model=ask.model,
                        version=ask.version,
                        environment=ask.environment,
                        requested_by=ask.requested_by,
                        deployment_id=deployment_id,
                        policy_version=decision.policy_version,
                        allowed=decision.allowed and not extra_reasons,
                        reasons=reasons_json(decision.reasons + extra_reasons),
                        source=source,
                        decided_at=decision.decided_at,
                    )
                    .returning(c.c.id)
                )
            ).scalar_one()
        )
