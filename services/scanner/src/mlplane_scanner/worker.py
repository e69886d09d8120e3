"""The scan worker: claims pending scans, runs Trivy outside any transaction, stores results.

Runs in the plug-in's lifespan. `max_concurrent_scans` loops each take one scan
at a time (`FOR UPDATE SKIP LOCKED` plus a lease, so several replicas share the
work and a scan whose worker died is taken again). Trivy runs as a child process:
the event loop only waits on it. A scan Trivy cannot do (image unreachable or
corrupt, Trivy broken or too slow) ends with verdict `error` and its cause; a
passing failure of our own storage is retried a few times first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlplane_runtime.errors import MlplaneError
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory

from mlplane_scanner.metrics import FINDINGS, SCAN_DURATION, SCANS_RUNNING, VERDICTS
from mlplane_scanner.reports import ReportStore, report_key
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
CYCLONEDX = "application/vnd.cyclonedx+json"


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    max_concurrent: int
    lease_s: float
    poll_interval_s: float
    attempts: int
    layout_root: Path | None
    registry_username: str | None
    registry_password: str | None

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
        )


class ScanWorker:
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
        self._wake = asyncio.Event()

    def wake(self, delay_s: float = 0.2) -> None:
        """Look for work soon (the handler's transaction commits just after it asks)."""
        with contextlib.suppress(RuntimeError):  # no running loop: the poll finds it
            asyncio.get_running_loop().call_later(delay_s, self._wake.set)

    async def run(self) -> None:
        """Run the worker loops until cancelled."""
        async with asyncio.TaskGroup() as group:
            for index in range(self._config.max_concurrent):
                group.create_task(self._loop(), name=f"{self._name}-scan-worker-{index}")

    async def _loop(self) -> None:
        while True:
            try:
                scan = await self._claim()
            except Exception:
                _log.exception("claiming a scan failed; trying again later")
                scan = None
            if scan is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._config.poll_interval_s)
                continue
            try:
                await self.process(scan)
            except Exception:
                # The lease runs out and the scan is taken again; the worker lives on.
                _log.exception("scan %s of %s failed unexpectedly", scan.id, scan.reference)

    async def run_once(self) -> bool:
        """Claim and process one scan, if any is waiting; True when one was processed."""
        scan = await self._claim()
        if scan is None:
            return False
        await self.process(scan)
        return True

    async def _claim(self) -> ScanRow | None:
        async with self._uow_factory() as uow:
            scan = await self._service_of(uow).claim(self._config.lease_s)
            await uow.commit()
            return scan

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

    async def process(self, scan: ScanRow) -> None:
        """Scan one claimed image to its verdict (or put it back for another try)."""
        started = time.monotonic()
        SCANS_RUNNING.labels(self._name).inc()
        outcome = "error"
        try:
            async with self._leased(scan):
                outcome = await self._scan(scan)
        finally:
            SCANS_RUNNING.labels(self._name).dec()
            SCAN_DURATION.labels(self._name, outcome).observe(time.monotonic() - started)

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

    @contextlib.asynccontextmanager
    async def _leased(self, scan: ScanRow) -> AsyncIterator[None]:
        renewer = asyncio.create_task(self._renew(scan.id))
        try:
            yield
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)

    async def _renew(self, scan_id: int) -> None:
        while True:
            await asyncio.sleep(self._config.lease_s / 3)
            try:
                async with self._uow_factory() as uow:
                    await self._service_of(uow).renew(scan_id, self._config.lease_s)
                    await uow.commit()
            except Exception:
                _log.warning("renewing the lease of scan %s failed", scan_id, exc_info=True)
