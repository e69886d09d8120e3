"""The scan worker: the scanner's scans as jobs of the runtime's leased job worker.

The runtime's `JobWorker` claims (`FOR UPDATE SKIP LOCKED` plus a lease, so several
replicas share the work and a scan whose worker died is taken again), renews
leases, wakes after commits, runs up to `max_concurrent_scans` at once and stops
gracefully; this module says what a scan job is. Trivy runs as a child process:
the event loop only waits on it. A scan Trivy cannot do (image unreachable or
corrupt, Trivy broken or too slow) ends with verdict `error` and its cause; a
passing failure of our own storage is retried a few times first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlplane_runtime.errors import MlplaneError
from mlplane_runtime.jobs import ClaimRequest, JobInfo, JobTrace, JobWorker
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory

from mlplane_scanner.backlog import BacklogNotice
from mlplane_scanner.metrics import FINDINGS, SCAN_DURATION, SCANS_RUNNING, VERDICTS
from mlplane_scanner.reports import CYCLONEDX, ReportStore, report_key
from mlplane_scanner.service import ScannerService, ScanOutcome
from mlplane_scanner.settings import ScannerSettings
from mlplane_scanner.store import ScanRow
from mlplane_scanner.trivy import (
    ImageScanResult,
    ImageSource,
    LayoutImage,
    RegistryImage,
    TrivyError,
    TrivyRunner,
)

_log = logging.getLogger("mlplane.scanner")
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    max_concurrent: int
    lease_s: float
    poll_interval_s: float
    attempts: int
    layout_root: Path | None
    registry_username: str | None
    registry_password: str | None
    queue_warning_s: float = 60.0

    @classmethod
    def of(cls, settings: ScannerSettings, layout_root: Path | None) -> WorkerConfig:
        password = settings.registry_password
        return cls(
            max_concurrent=settings.max_concurrent_scans,
            lease_s=settings.lease_s,
            poll_interval_s=settings.poll_interval_s,
            attempts=settings.scan_attempts,
            layout_root=layout_root,
            registry_username=settings.registry_username,
            registry_password=None if password is None else password.get_secret_value(),
            queue_warning_s=settings.queue_warning_s,
        )


class ScanWorker:
    """Runs scans of one hosted scanner: `run()` until cancelled, or `run_once()`."""

    def __init__(
        self,
        service_name: str,
        uow_factory: UnitOfWorkFactory,
        service_of: Callable[[UnitOfWork], ScannerService],
        runner: TrivyRunner,
        reports: ReportStore,
        config: WorkerConfig,
    ) -> None:
        self._name = service_name
        self._uow_factory = uow_factory
        self._service_of = service_of
        self._runner = runner
        self._reports = reports
        self._config = config
        self._backlog = BacklogNotice(
            service_name, config.max_concurrent, config.queue_warning_s, time.monotonic
        )
        self._worker: JobWorker[ScanRow, str] = JobWorker(
            service_name,
            "scan",
            self,
            concurrency=config.max_concurrent,
            lease_s=config.lease_s,
            poll_s=config.poll_interval_s,
        )

    def wake(self) -> None:
        """Look for work now (call once the scan is committed: `uow.after_commit`)."""
        self._worker.wake()

    async def run(self) -> None:
        """Run the worker until cancelled; running scans then finish or are released."""
        await self._worker.run()

    async def run_once(self) -> bool:
        """Claim and process one scan, if any is waiting; True when one was processed."""
        return await self._worker.run_once() is not None

    # -- the runtime's LeasedJobs ---------------------------------------------------

    async def claim(self, request: ClaimRequest) -> Sequence[ScanRow]:
        claimed: list[ScanRow] = []
        async with self._uow_factory() as uow:
            service = self._service_of(uow)
            while len(claimed) < request.limit:
                scan = await service.claim(request.lease_s)
                if scan is None:
                    break
                claimed.append(scan)
            await uow.commit()
        now = datetime.now(UTC)
        for scan in claimed:
            self._backlog.claimed(scan.requested_at, now, first_attempt=scan.attempts == 1)
        return claimed

    async def renew(self, scan: ScanRow, lease_s: float) -> bool:
        async with self._uow_factory() as uow:
            await self._service_of(uow).renew(scan.id, lease_s)
            await uow.commit()
        return True  # scans have no owner: a lease runs out only when renewals fail

    async def release(self, scan: ScanRow) -> None:
        await self._release(scan, "the scanner stopped before the scan finished")

    def describe(self, scan: ScanRow) -> JobInfo:
        return JobInfo(
            id=str(scan.id),
            trace=JobTrace(scan.traceparent, scan.tracestate),
            attributes={
                "mlplane.team": scan.team,
                "mlplane.model": scan.model,
                "mlplane.model_version": scan.model_version,
                "oci.image": scan.reference,
            },
        )

    async def next_due_in(self) -> float | None:
        return None  # pending scans are due at once

    async def run_job(self, scan: ScanRow) -> str:
        return await self.process(scan)

    def source_of(self, scan: ScanRow) -> ImageSource:
        """The image on the local disk when the builder wrote it there, else its registry."""
        root = self._config.layout_root
        if root is not None:
            layout = root / scan.repository
            if (layout / "index.json").is_file():
                return LayoutImage(layout)
        return RegistryImage(
            scan.reference, self._config.registry_username, self._config.registry_password
        )

    async def process(self, scan: ScanRow) -> str:
        """Scan one claimed image to its verdict (or put it back for another try);
        returns the verdict, `error` or `retried`."""
        started = time.monotonic()
        SCANS_RUNNING.labels(self._name).inc()
        outcome = "error"
        try:
            outcome = await self._scan(scan)
        finally:
            SCANS_RUNNING.labels(self._name).dec()
            SCAN_DURATION.labels(self._name, outcome).observe(time.monotonic() - started)
        return outcome

    async def _scan(self, scan: ScanRow) -> str:
        source = await asyncio.to_thread(self.source_of, scan)
        try:
            result = await self._runner.scan(source)
            sbom = await self._runner.sbom(source)
        except TrivyError as error:
            await self._fail(scan, error.detail)
            return "error"
        for finding in result.findings:
            FINDINGS.labels(self._name, finding.kind.value, finding.severity.value).inc()
        try:
            outcome = await self._store(scan, result, sbom)
            async with self._uow_factory() as uow:
                evaluation = await self._service_of(uow).complete_scan(scan.id, outcome)
                await uow.commit()
        except MlplaneError as error:
            if not error.retryable or scan.attempts >= self._config.attempts:
                await self._fail(scan, f"storing the scan's results failed: {error.detail}")
                return "error"
            await self._release(scan, error.detail)
            return "retried"
        VERDICTS.labels(self._name, evaluation.verdict.value).inc()
        return evaluation.verdict.value

    async def _store(self, scan: ScanRow, result: ImageScanResult, sbom: bytes) -> ScanOutcome:
        db_label = None if result.db is None else result.db.label
        report_uri = await self._reports.put(
            report_key(scan.team, scan.digest, db_label, "trivy.json"), result.report, JSON
        )
        sbom_uri = await self._reports.put(
            report_key(scan.team, scan.digest, db_label, "sbom.cdx.json"), sbom, CYCLONEDX
        )
        return ScanOutcome(
            findings=result.findings,
            vulnerabilities_assessed=result.vulnerabilities_assessed,
            not_assessed_reason=result.not_assessed_reason,
            db_version=db_label,
            trivy_version=result.trivy_version or await self._trivy_version(),
            report_uri=report_uri,
            sbom_uri=sbom_uri,
        )

    async def _fail(self, scan: ScanRow, cause: str) -> None:
        _log.warning("scan of %s ended in error: %s", scan.reference, cause)
        version = await self._trivy_version()
        # The error has its own report, so `report_uri` always leads somewhere useful.
        document = {
            "image": scan.reference,
            "error": cause,
            "trivy_version": version,
            "failed_at": datetime.now(UTC).isoformat(),
        }
        report_uri = await self._put_or_placeholder(
            report_key(scan.team, scan.digest, None, "error.json"),
            json.dumps(document, indent=2).encode(),
        )
        async with self._uow_factory() as uow:
            await self._service_of(uow).fail_scan(
                scan.id, cause, report_uri=report_uri, trivy_version=version
            )
            await uow.commit()
        VERDICTS.labels(self._name, "error").inc()

    async def _put_or_placeholder(self, key: str, data: bytes) -> str:
        try:
            return await self._reports.put(key, data, JSON)
        except MlplaneError as error:
            _log.warning("storing the error report %s failed: %s", key, error.detail)
            return f"mlplane://scanner/{key}"

    async def _release(self, scan: ScanRow, error: str) -> None:
        async with self._uow_factory() as uow:
            await self._service_of(uow).release(scan.id, error)
            await uow.commit()

    async def _trivy_version(self) -> str:
        try:
            return await self._runner.trivy_version()
        except TrivyError:
            return "unknown"
