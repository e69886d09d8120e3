"""The scanner's use cases; each takes a unit of work and never commits it.

Verdicts: a finished scan is evaluated against the team's policy of every
environment (each stored, so the deployer can ask "may this digest go to dev?"),
and `image.scanned` carries the verdict of `verdict_environment` (prod unless
configured otherwise): the gate an image must clear before it serves users.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from mlplane_contracts import events as ev
from mlplane_contracts.events import Environment
from mlplane_contracts.subjects import version_subject
from mlplane_runtime.jobs import JobTrace
from mlplane_runtime.uow import UnitOfWork

from mlplane_scanner.domain.errors import PolicyChanged, ScanNotFound
from mlplane_scanner.domain.evaluation import NOT_ASSESSED_CAUSE, Evaluation, evaluate
from mlplane_scanner.domain.exceptions import FindingException
from mlplane_scanner.domain.findings import Finding
from mlplane_scanner.domain.policy import Policy, default_policy
from mlplane_scanner.domain.vex import VexDocument
from mlplane_scanner.store import DONE, ERROR, ScannerTables, ScanRow, ScanStore

_log = logging.getLogger("mlplane.scanner")

# Phases in which a deployment's image serves (or is about to): what a new DB rescans.
SERVING_PHASES = frozenset(
    {
        ev.DeploymentPhase.SYNCING,
        ev.DeploymentPhase.PROGRESSING,
        ev.DeploymentPhase.HEALTHY,
        ev.DeploymentPhase.DEGRADED,
    }
)
DB_VERSION_KEY = "vulnerability_db_version"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """What a finished Trivy run left: findings, and where its report and SBOM are."""

    findings: tuple[Finding, ...]
    vulnerabilities_assessed: bool
    not_assessed_reason: str | None
    db_version: str | None
    trivy_version: str
    report_uri: str
    sbom_uri: str | None


@dataclass(frozen=True, slots=True)
class ScanView:
    """A scan with its findings and its verdict per environment, evaluated now."""

    scan: ScanRow
    findings: tuple[Finding, ...]
    evaluations: Mapping[str, Evaluation]


def policy_etag(policy: Policy) -> str:
    return f'"{policy.environment.value}-{policy.version}"'


class ScannerService:
    def __init__(
        self,
        uow: UnitOfWork,
        tables: ScannerTables,
        *,
        verdict_environment: Environment = Environment.PROD,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._uow = uow
        self._repo = ScanStore(uow.session, tables)
        self._verdict_environment = verdict_environment
        self._clock = clock

    # -- policies -------------------------------------------------------------------

    async def policy(self, team: str, environment: Environment) -> Policy:
        """The environment's current policy (the default, version 0, if never written)."""
        found = await self._repo.latest_policy(team, environment)
        return found if found is not None else default_policy(team, environment)

    async def policies(self, team: str) -> dict[Environment, Policy]:
        return {env: await self.policy(team, env) for env in Environment}

    async def _edit(
        self,
        team: str,
        environment: Environment,
        if_match: str | None,
        edit: Callable[[Policy], Policy],
    ) -> Policy:
        current = await self.policy(team, environment)
        if if_match is not None and if_match.strip() not in ("*", policy_etag(current)):
            raise PolicyChanged(
                f"the {environment.value} policy is at version {current.version}, "
                f"not the one If-Match names ({if_match})",
                environment=environment.value,
                version=current.version,
            )
        updated = edit(current)
        await self._repo.add_policy_version(updated)
        return updated

    async def put_policy(
        self,
        team: str,
        environment: Environment,
        *,
        max_severity: ev.Severity,
        ignore_unfixed: bool,
        license_deny: Iterable[str],
        block_when_vulnerabilities_not_assessed: bool,
        by: str,
        if_match: str | None,
    ) -> Policy:
        """A new version with these settings (exceptions and VEX kept).

        Raises `PolicyChanged` when `if_match` names another version.
        """
        now = self._clock()
        return await self._edit(
            team,
            environment,
            if_match,
            lambda p: p.with_settings(
                max_severity=max_severity,
                ignore_unfixed=ignore_unfixed,
                license_deny=license_deny,
                block_when_vulnerabilities_not_assessed=block_when_vulnerabilities_not_assessed,
                by=by,
                at=now,
            ),
        )

    async def add_exception(
        self,
        team: str,
        environment: Environment,
        exception: FindingException,
        *,
        by: str,
        if_match: str | None,
    ) -> Policy:
        now = self._clock()
        return await self._edit(
            team, environment, if_match, lambda p: p.with_exception(exception, by=by, at=now)
        )

    async def remove_exception(
        self,
        team: str,
        environment: Environment,
        finding_id: str,
        package: str | None,
        *,
        by: str,
        if_match: str | None,
    ) -> Policy:
        """Raises `ExceptionNotFound` when the policy has no such exception."""
        now = self._clock()
        return await self._edit(
            team,
            environment,
            if_match,
            lambda p: p.without_exception(finding_id, package, by=by, at=now),
        )

    async def add_vex(
        self, team: str, environment: Environment, document: VexDocument, *, by: str
    ) -> Policy:
        now = self._clock()
        return await self._edit(
            team, environment, None, lambda p: p.with_vex(document, by=by, at=now)
        )

    # -- scans ----------------------------------------------------------------------

    async def request_scan(self, built: ev.ImageBuilt) -> bool:
        """Record a pending scan of the built image; True when one was queued.

        A repeated `image.built` for an image already scanned queues nothing: its
        stored findings are evaluated again, and `image.scanned` is emitted only if
        the verdict's policy version changed since the last one (one verdict per
        digest and policy version).
        """
        scan, created = await self._repo.request_scan(
            built.team,
            built.model,
            built.version,
            built.image.repository,
            built.image.digest,
            JobTrace.current(),
        )
        if not created and scan.state == DONE:
            await self._evaluate_and_emit(scan, emit="policy_changed")
        return created

    async def claim(self, lease_s: float) -> ScanRow | None:
        return await self._repo.claim_scan(self._clock(), lease_s)

    async def renew(self, scan_id: int, lease_s: float) -> None:
        await self._repo.renew_lease(scan_id, self._clock(), lease_s)

    async def release(self, scan_id: int, error: str) -> None:
        await self._repo.release_scan(scan_id, error)

    async def complete_scan(self, scan_id: int, outcome: ScanOutcome) -> Evaluation:
        """Store the outcome, evaluate it for every environment, emit `image.scanned`.

        The first verdict of a scan is always emitted; a rescan's only when it changed.
        """
        scan = await self._locked_scan(scan_id)
        await self._repo.finish_scan(
            scan_id,
            state=DONE,
            finished_at=self._clock(),
            trivy_version=outcome.trivy_version,
            db_version=outcome.db_version,
            vulnerabilities_assessed=outcome.vulnerabilities_assessed,
            not_assessed_reason=outcome.not_assessed_reason,
            report_uri=outcome.report_uri,
            sbom_uri=outcome.sbom_uri,
            findings=outcome.findings,
        )
        finished = await self._locked_scan(scan_id)
        first = scan.emitted_verdict is None
        return await self._evaluate_and_emit(finished, emit="always" if first else "changed")

    async def fail_scan(
        self, scan_id: int, cause: str, *, report_uri: str, trivy_version: str
    ) -> None:
        """The scan could not run: record the cause, emit verdict `error` (unless it was
        already the last verdict emitted for this image)."""
        scan = await self._locked_scan(scan_id)
        now = self._clock()
        await self._repo.finish_scan(
            scan_id,
            state=ERROR,
            finished_at=now,
            error=cause,
            trivy_version=trivy_version,
            report_uri=report_uri,
        )
        if scan.emitted_verdict == ev.ScanVerdict.ERROR.value:
            return
        self._uow.emit(
            ev.ImageScanned(
                team=scan.team,
                model=scan.model,
                version=scan.model_version,
                image=ev.ImageReference(repository=scan.repository, digest=scan.digest),
                verdict=ev.ScanVerdict.ERROR,
                counts=ev.SeverityCounts(),
                reasons=(f"scan failed: {cause}"[:4096],),
                report_uri=report_uri,
                scanner_version=f"trivy {trivy_version}",
                scanned_at=now,
                vulnerabilities_assessed=False,
            ),
            subject=version_subject(scan.team, scan.model, scan.model_version),
        )
        await self._repo.mark_emitted(scan_id, ev.ScanVerdict.ERROR.value, 0)

    async def reevaluate(self, scan_id: int) -> Evaluation | None:
        """Evaluate a finished scan again (policies edited, exceptions expired); emit only
        a changed verdict. None for a scan with no findings to evaluate (error, pending)."""
        scan = await self._locked_scan(scan_id)
        if scan.state != DONE:
            return None
        return await self._evaluate_and_emit(scan, emit="changed")

    async def _locked_scan(self, scan_id: int) -> ScanRow:
        scan = await self._repo.get_scan(scan_id, lock=True)
        if scan is None:
            raise ScanNotFound(f"no scan {scan_id}")
        return scan

    async def evaluations(
        self, scan: ScanRow, findings: Iterable[Finding]
    ) -> dict[str, Evaluation]:
        """The scan's verdict under each environment's current policy, now."""
        now = self._clock()
        listed = tuple(findings)
        cause = scan.not_assessed_reason or NOT_ASSESSED_CAUSE
        return {
            env.value: evaluate(
                listed,
                policy,
                now=now,
                vulnerabilities_assessed=bool(scan.vulnerabilities_assessed),
                image_digest=scan.digest,
                not_assessed_cause=cause,
            )
            for env, policy in (await self.policies(scan.team)).items()
        }

    async def _evaluate_and_emit(self, scan: ScanRow, *, emit: str) -> Evaluation:
        findings = await self._repo.findings_of(scan.id)
        now = self._clock()
        results = await self.evaluations(scan, findings)
        for evaluation in results.values():
            await self._repo.save_evaluation(scan.id, evaluation, now)
        chosen = results[self._verdict_environment.value]
        changed = chosen.verdict.value != scan.emitted_verdict
        policy_changed = chosen.policy_version != scan.emitted_policy_version
        if (
            emit == "always"
            or (emit == "changed" and changed)
            or (emit == "policy_changed" and (changed or policy_changed))
        ):
            self._emit_verdict(scan, chosen, now)
            await self._repo.mark_emitted(scan.id, chosen.verdict.value, chosen.policy_version)
        return chosen

    def _emit_verdict(self, scan: ScanRow, evaluation: Evaluation, now: datetime) -> None:
        assert scan.report_uri is not None  # a finished scan always stored its report
        counts = {s.value: n for s, n in evaluation.counts.items()}
        self._uow.emit(
            ev.ImageScanned(
                team=scan.team,
                model=scan.model,
                version=scan.model_version,
                image=ev.ImageReference(repository=scan.repository, digest=scan.digest),
                verdict=ev.ScanVerdict(evaluation.verdict.value),
                counts=ev.SeverityCounts(**counts),
                reasons=evaluation.reasons,
                report_uri=scan.report_uri,
                sbom_uri=scan.sbom_uri,
                scanner_version=f"trivy {scan.trivy_version or 'unknown'}",
                scanned_at=now,
                vulnerabilities_assessed=evaluation.vulnerabilities_assessed,
                policy_version=evaluation.policy_version or None,
            ),
            subject=version_subject(scan.team, scan.model, scan.model_version),
        )

    async def scan_views(self, team: str, digest: str) -> list[ScanView]:
        """Every scan of `digest` in `team`, with its verdict per environment now.

        Raises `ScanNotFound` when the team has no scan of that digest.
        """
        scans = await self._repo.scans_of_digest(team, digest)
        if not scans:
            raise ScanNotFound(f"no scan of {digest} in team {team}", digest=digest)
        views = []
        for scan in scans:
            findings = tuple(await self._repo.findings_of(scan.id))
            evaluations = await self.evaluations(scan, findings) if scan.state == DONE else {}
            views.append(ScanView(scan, findings, evaluations))
        return views

    async def sbom_uri(self, team: str, digest: str) -> str:
        """Where the newest SBOM of `digest` in `team` is kept.

        Raises `ScanNotFound` when the team has no finished scan of it with an SBOM.
        """
        scans = await self._repo.scans_of_digest(team, digest)
        for scan in reversed(scans):
            if scan.sbom_uri is not None:
                return scan.sbom_uri
        raise ScanNotFound(f"no SBOM of {digest} in team {team}", digest=digest)

    async def list_scans(self, team: str, limit: int, before_id: int | None) -> list[ScanRow]:
        return await self._repo.list_scans(team, limit, before_id)

    # -- deployments and rescans -----------------------------------------------------

    async def record_deployment(self, changed: ev.DeploymentStatusChanged) -> None:
        """Remember which image serves where (only serving phases with an image count)."""
        if changed.image is None or changed.phase not in SERVING_PHASES:
            return
        await self._repo.record_deployed(
            changed.team,
            changed.environment.value,
            changed.model,
            changed.version,
            changed.image.repository,
            changed.image.digest,
            changed.changed_at,
        )

    async def deployed_scan_ids(self) -> list[int]:
        return await self._repo.deployed_scan_ids()

    async def note_db_version(self, label: str) -> bool:
        """Remember the vulnerability database now in use; True when it is a new one
        (there was one before and it differs): deployed images then need a rescan."""
        previous = await self._repo.get_state(DB_VERSION_KEY)
        if previous == label:
            return False
        await self._repo.set_state(DB_VERSION_KEY, label)
        if previous is not None:
            _log.info("vulnerability database changed from %s to %s", previous, label)
        return previous is not None

    async def rescan_deployed(self) -> int:
        """Queue every deployed image's scan again; how many were queued."""
        ids = await self._repo.deployed_scan_ids()
        return await self._repo.request_rescans(ids, self._clock(), JobTrace.current())
