"""All of the scanner's SQL: policies, scans and their findings, evaluations, deployed images."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from mlplane_contracts.events import Environment, Severity
from mlplane_runtime.jobs import JobTrace
from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mlplane_scanner.domain.errors import PolicyChanged
from mlplane_scanner.domain.evaluation import Evaluation
from mlplane_scanner.domain.findings import Finding, FindingKind
from mlplane_scanner.domain.policy import Policy
from mlplane_scanner.store.rows import EvaluationRow, ScanRow
from mlplane_scanner.store.tables import ScannerTables

PENDING, RUNNING, DONE, ERROR = "pending", "running", "done", "error"


class ScanStore:
    def __init__(self, session: AsyncSession, tables: ScannerTables) -> None:
        self._session = session
        self._t = tables

    # -- policies -----------------------------------------------------------------

    async def latest_policy(self, team: str, environment: Environment) -> Policy | None:
        p = self._t.policies
        row = (
            await self._session.execute(
                select(p)
                .where(p.c.team == team, p.c.environment == environment.value)
                .order_by(p.c.version.desc())
                .limit(1)
            )
        ).first()
        if row is None:
            return None
        return Policy.from_json(
            team,
            environment,
            row.version,
            row.document,
            updated_by=row.updated_by,
            updated_at=row.created_at,
        )

    async def add_policy_version(self, policy: Policy) -> None:
        """Store `policy` as its environment's next version.

        Raises `PolicyChanged` when that version exists already (someone edited first).
        """
        try:
            async with self._session.begin_nested():
                await self._session.execute(
                    insert(self._t.policies).values(
                        team=policy.team,
                        environment=policy.environment.value,
                        version=policy.version,
                        document=policy.as_json(),
                        updated_by=policy.updated_by or "unknown",
                        created_at=policy.updated_at or func.now(),
                    )
                )
        except IntegrityError:
            raise PolicyChanged(
                f"the {policy.environment.value} policy changed meanwhile "
                f"(version {policy.version} exists); read it again and retry",
                environment=policy.environment.value,
            ) from None

    # -- scans --------------------------------------------------------------------

    async def request_scan(
        self,
        team: str,
        model: str,
        model_version: int,
        repository: str,
        digest: str,
        trace: JobTrace = JobTrace(),
    ) -> tuple[ScanRow, bool]:
        """The scan of this image of a model version, and whether it was just requested
        (then run in `trace`)."""
        s = self._t.scans
        inserted = (
            await self._session.execute(
                pg_insert(s)
                .values(
                    team=team,
                    model=model,
                    model_version=model_version,
                    repository=repository,
                    digest=digest,
                    state=PENDING,
                    traceparent=trace.traceparent,
                    tracestate=trace.tracestate,
                )
                .on_conflict_do_nothing(constraint="uq_scans_version_digest")
                .returning(s)
            )
        ).first()
        if inserted is not None:
            return ScanRow.of(inserted), True
        existing = (
            await self._session.execute(
                select(s).where(
                    s.c.team == team,
                    s.c.model == model,
                    s.c.model_version == model_version,
                    s.c.digest == digest,
                )
            )
        ).one()
        return ScanRow.of(existing), False

    async def claim_scan(self, now: datetime, lease_s: float) -> ScanRow | None:
        """Take the oldest pending scan (or one whose worker's lease ran out) for a while.

        Competing workers skip rows another holds (`SKIP LOCKED`): each scan runs once.
        """
        s = self._t.scans
        candidate = (
            select(s.c.id)
            .where(or_(s.c.state == PENDING, and_(s.c.state == RUNNING, s.c.lease_until < now)))
            .order_by(s.c.requested_at, s.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        row = (
            await self._session.execute(
                update(s)
                .where(s.c.id == candidate)
                .values(
                    state=RUNNING,
                    attempts=s.c.attempts + 1,
                    lease_until=now + timedelta(seconds=lease_s),
                    started_at=now,
                )
                .returning(s)
            )
        ).first()
        return None if row is None else ScanRow.of(row)

    async def renew_lease(self, scan_id: int, now: datetime, lease_s: float) -> None:
        s = self._t.scans
        await self._session.execute(
            update(s)
            .where(s.c.id == scan_id, s.c.state == RUNNING)
            .values(lease_until=now + timedelta(seconds=lease_s))
        )

    async def release_scan(self, scan_id: int, error: str) -> None:
        """Put a scan back for another try after a passing failure (storage down)."""
        s = self._t.scans
        await self._session.execute(
            update(s).where(s.c.id == scan_id).values(state=PENDING, lease_until=None, error=error)
        )

    async def finish_scan(
        self,
        scan_id: int,
        *,
        state: str,
        finished_at: datetime,
        error: str | None = None,
        trivy_version: str | None = None,
        db_version: str | None = None,
        vulnerabilities_assessed: bool | None = None,
        not_assessed_reason: str | None = None,
        report_uri: str | None = None,
        sbom_uri: str | None = None,
        findings: Sequence[Finding] = (),
    ) -> None:
        """Record a scan's outcome and replace its findings with `findings`."""
        s, f = self._t.scans, self._t.findings
        await self._session.execute(
            update(s)
            .where(s.c.id == scan_id)
            .values(
                state=state,
                lease_until=None,
                error=error,
                trivy_version=trivy_version,
                db_version=db_version,
                vulnerabilities_assessed=vulnerabilities_assessed,
                not_assessed_reason=not_assessed_reason,
                report_uri=report_uri,
                sbom_uri=sbom_uri,
                finished_at=finished_at,
            )
        )
        await self._session.execute(delete(f).where(f.c.scan_id == scan_id))
        if findings:
            await self._session.execute(
                insert(f),
                [
                    {
                        "scan_id": scan_id,
                        "kind": x.kind.value,
                        "finding_id": x.id,
                        "severity": x.severity.value,
                        "title": x.title,
                        "target": x.target,
                        "package": x.package,
                        "installed_version": x.installed_version,
                        "fixed_version": x.fixed_version,
                        "layer": x.layer,
                    }
                    for x in findings
                ],
            )

    async def mark_emitted(self, scan_id: int, verdict: str, policy_version: int) -> None:
        s = self._t.scans
        await self._session.execute(
            update(s)
            .where(s.c.id == scan_id)
            .values(emitted_verdict=verdict, emitted_policy_version=policy_version)
        )

    async def get_scan(self, scan_id: int, *, lock: bool = False) -> ScanRow | None:
        s = self._t.scans
        query = select(s).where(s.c.id == scan_id)
        if lock:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        return None if row is None else ScanRow.of(row)

    async def scans_of_digest(self, team: str, digest: str) -> list[ScanRow]:
        s = self._t.scans
        rows = await self._session.execute(
            select(s).where(s.c.team == team, s.c.digest == digest).order_by(s.c.id)
        )
        return [ScanRow.of(row) for row in rows]

    async def list_scans(self, team: str, limit: int, before_id: int | None) -> list[ScanRow]:
        s = self._t.scans
        query = select(s).where(s.c.team == team)
        if before_id is not None:
            query = query.where(s.c.id < before_id)
        rows = await self._session.execute(query.order_by(s.c.id.desc()).limit(limit))
        return [ScanRow.of(row) for row in rows]

    async def findings_of(self, scan_id: int) -> list[Finding]:
        f = self._t.findings
        rows = await self._session.execute(select(f).where(f.c.scan_id == scan_id).order_by(f.c.id))
        return [
            Finding(
                kind=FindingKind(row.kind),
                id=row.finding_id,
                severity=Severity(row.severity),
                title=row.title,
                target=row.target,
                package=row.package,
                installed_version=row.installed_version,
                fixed_version=row.fixed_version,
                layer=row.layer,
            )
            for row in rows
        ]

    # -- evaluations --------------------------------------------------------------

    async def save_evaluation(self, scan_id: int, evaluation: Evaluation, at: datetime) -> None:
        e = self._t.evaluations
        values: dict[str, Any] = {
            "policy_version": evaluation.policy_version,
            "verdict": evaluation.verdict.value,
            "reasons": list(evaluation.reasons),
            "counts": {s.value: n for s, n in evaluation.counts.items()},
            "suppressed": [
                {
                    "kind": x.finding.kind.value,
                    "id": x.finding.id,
                    "package": x.finding.package,
                    "target": x.finding.target,
                    "why": x.why,
                }
                for x in evaluation.suppressed
            ],
            "evaluated_at": at,
        }
        statement = pg_insert(e).values(
            scan_id=scan_id, environment=evaluation.environment, **values
        )
        await self._session.execute(
            statement.on_conflict_do_update(index_elements=["scan_id", "environment"], set_=values)
        )

    async def evaluations_of(self, scan_id: int) -> list[EvaluationRow]:
        e = self._t.evaluations
        rows = await self._session.execute(
            select(e).where(e.c.scan_id == scan_id).order_by(e.c.environment)
        )
        return [
            EvaluationRow(
                row.environment,
                row.policy_version,
                row.verdict,
                row.reasons,
                row.counts,
                row.suppressed,
                row.evaluated_at,
            )
            for row in rows
        ]

    # -- deployed images and rescans -----------------------------------------------

    async def record_deployed(
        self,
        team: str,
        environment: str,
        model: str,
        model_version: int,
        repository: str,
        digest: str,
        changed_at: datetime,
    ) -> None:
        """Remember what serves in `environment`; an older fact never overwrites a newer one."""
        d = self._t.deployed
        values = {
            "model_version": model_version,
            "repository": repository,
            "digest": digest,
            "changed_at": changed_at,
        }
        statement = pg_insert(d).values(team=team, environment=environment, model=model, **values)
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=["team", "environment", "model"],
                set_=values,
                where=d.c.changed_at < statement.excluded.changed_at,
            )
        )

    async def deployed_scan_ids(self) -> list[int]:
        """Finished scans of images that serve somewhere now."""
        s, d = self._t.scans, self._t.deployed
        rows = await self._session.execute(
            select(s.c.id)
            .distinct()
            .join(
                d,
                and_(
                    d.c.team == s.c.team,
                    d.c.digest == s.c.digest,
                    d.c.model == s.c.model,
                    d.c.model_version == s.c.model_version,
                ),
            )
            .where(s.c.state.in_([DONE, ERROR]))
            .order_by(s.c.id)
        )
        return [row.id for row in rows]

    async def request_rescans(
        self, scan_ids: Sequence[int], now: datetime, trace: JobTrace = JobTrace()
    ) -> int:
        """Queue finished scans again (a new vulnerability database), each rescan run in
        `trace`; returns how many."""
        if not scan_ids:
            return 0
        s = self._t.scans
        result = await self._session.execute(
            update(s)
            .where(s.c.id.in_(scan_ids), s.c.state.in_([DONE, ERROR]))
            .values(
                state=PENDING,
                attempts=0,
                requested_at=now,
                traceparent=trace.traceparent,
                tracestate=trace.tracestate,
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def get_state(self, key: str) -> str | None:
        t = self._t.state
        return (
            await self._session.execute(select(t.c.value).where(t.c.key == key))
        ).scalar_one_or_none()

    async def set_state(self, key: str, value: str) -> None:
        t = self._t.state
        statement = pg_insert(t).values(key=key, value=value)
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=["key"], set_={"value": value, "updated_at": func.now()}
            )
        )
