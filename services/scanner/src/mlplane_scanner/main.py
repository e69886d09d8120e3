"""The scanner as a plug-in of the mlplane platform: `plugin` is its entry point,
`build` its one composition root (the host calls it once per hosting; tests too).

A hosting is its settings, the Trivy runner, the report store (S3, or the local
disk when `MLPLANE_SCANNER_S3_ENDPOINT_URL` is unset), the scan worker and the
rescan watch (both `ServiceWorker`s), and a lifespan opening the S3 report store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from mlplane_runtime.service import ServiceContext, ServiceParts, ServicePlugin, ServiceWorker
from mlplane_runtime.settings import load_settings
from mlplane_runtime.uow import UnitOfWork

from mlplane_scanner import api, handlers
from mlplane_scanner.deps import HostedScanner
from mlplane_scanner.reports import LocalDiskReportStore, ReportStore, S3ReportStore
from mlplane_scanner.rescan import RescanWatch
from mlplane_scanner.service import ScannerService, utc_now
from mlplane_scanner.settings import ScannerSettings
from mlplane_scanner.store import SCHEMA, ScannerTables, define_tables
from mlplane_scanner.trivy import TrivyRunner
from mlplane_scanner.worker import ScanWorker, WorkerConfig

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
BUILDER_LAYOUTS = Path("builder") / "images"


def build(
    context: ServiceContext,
    tables: ScannerTables,
    settings: ScannerSettings | None = None,
    *,
    runner: TrivyRunner | None = None,
    reports: ReportStore | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> ServiceParts:
    """One hosted scanner on `tables`: settings from `MLPLANE_SCANNER_*` unless given.

    `runner` and `reports` replace the ones the settings describe (tests share a
    started runner and report store, which the lifespan then leaves alone); `clock`
    is the use cases' time. Connects to nothing (the lifespan opens S3). Raises
    InvalidInput naming each bad variable.
    """
    settings = settings or load_settings(ScannerSettings)
    runner = runner or TrivyRunner(
        settings.trivy_binary,
        cache_dir=settings.cache_dir or context.data_dir / "trivy",
        db_repository=settings.db_repository,
        max_concurrent=settings.max_concurrent_scans,
        timeout_s=settings.scan_timeout_s,
        insecure_registries=settings.insecure_registries,
    )
    s3 = _s3_reports(settings) if reports is None else None
    reports = reports or s3 or LocalDiskReportStore(context.data_dir / "reports")
    layout_root = settings.layout_root or context.settings.data_dir / BUILDER_LAYOUTS

    def service_of(uow: UnitOfWork) -> ScannerService:
        return ScannerService(
            uow, tables, verdict_environment=settings.verdict_environment, clock=clock
        )

    worker = ScanWorker(
        context.name,
        context.uow_factory,
        service_of,
        runner,
        reports,
        WorkerConfig.of(settings, layout_root),
    )
    watch = RescanWatch(
        context.uow_factory,
        service_of,
        runner,
        interval_s=settings.rescan_interval_s,
        wake_worker=worker.wake,
    )
    scanner = HostedScanner(tables, settings, service_of, runner, reports, worker, watch)
    return ServiceParts(
        handlers=handlers.event_handlers(service_of, worker.wake),
        routers=[api.router],
        workers=[
            ServiceWorker("scan-worker", worker.run),
            ServiceWorker("rescan-watch", watch.run),
        ],
        lifespan=None if s3 is None else _started(s3),
        resources=scanner,
    )


def _s3_reports(settings: ScannerSettings) -> S3ReportStore | None:
    if settings.s3_endpoint_url is None:
        return None
    assert settings.s3_access_key is not None  # the settings validate it
    assert settings.s3_secret_key is not None
    return S3ReportStore(
        str(settings.s3_endpoint_url).rstrip("/"),
        settings.s3_space(),
        settings.s3_region,
        settings.s3_access_key.get_secret_value(),
        settings.s3_secret_key.get_secret_value(),
    )


@asynccontextmanager
async def _started(reports: S3ReportStore) -> AsyncIterator[None]:
    """The S3 report store, open while the scanner is hosted (its workers run inside)."""
    await reports.start()
    try:
        yield
    finally:
        await reports.close()


def make_plugin(name: str = "scanner", schema: str = SCHEMA) -> ServicePlugin:
    """The scanner called `name`, keeping its tables in `schema` (tests use throwaway ones).

    Raises ValueError for a name or schema the bus or database would refuse; a bad
    `MLPLANE_SCANNER_*` setting fails the host's start (`InvalidInput` naming it).
    """
    tables = define_tables(schema)
    return ServicePlugin(
        name=name,
        schema=schema,
        metadata=tables.metadata,
        migrations=MIGRATIONS,
        build=lambda context: build(context, tables),
    )


plugin = make_plugin()
