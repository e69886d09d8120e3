"""The scanner as a plug-in of the mlplane platform: `plugin` is its entry point.

Per hosting context the plug-in builds (without I/O) a `HostedScanner`: its
settings, the Trivy runner, the report store (S3, or the local disk when
`MLPLANE_SCANNER_S3_ENDPOINT_URL` is unset), the scan worker and the rescan
watch. The lifespan starts storage, then runs the worker and the watch until the
host stops the service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter
from mlplane_runtime.consumer import EventHandler
from mlplane_runtime.per_host import PerHost
from mlplane_runtime.service import ServiceContext, ServicePlugin
from mlplane_runtime.settings import load_settings
from mlplane_runtime.uow import UnitOfWork

from mlplane_scanner import api, handlers
from mlplane_scanner.reports import LocalDiskReportStore, ReportStore, S3ReportStore
from mlplane_scanner.rescan import RescanWatch
from mlplane_scanner.service import ScannerService
from mlplane_scanner.settings import ScannerSettings
from mlplane_scanner.store import SCHEMA, ScannerTables, define_tables
from mlplane_scanner.trivy import TrivyRunner
from mlplane_scanner.worker import ScanWorker, WorkerConfig

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
BUILDER_LAYOUTS = Path("builder") / "images"

_log = logging.getLogger("mlplane.scanner")


class HostedScanner:
    """Everything one hosted scanner runs with; built from settings, no I/O until `running`."""

    def __init__(
        self,
        settings: ScannerSettings,
        context: ServiceContext,
        tables: ScannerTables,
        *,
        runner: TrivyRunner | None = None,
        reports: ReportStore | None = None,
    ) -> None:
        self.settings = settings
        self.tables = tables
        self.context = context
        self.runner = runner or TrivyRunner(
            settings.trivy_binary,
            cache_dir=settings.cache_dir or context.data_dir / "trivy",
            db_repository=settings.db_repository,
            max_concurrent=settings.max_concurrent_scans,
            timeout_s=settings.scan_timeout_s,
            insecure_registries=settings.insecure_registries,
        )
        self.s3: S3ReportStore | None = None
        if reports is None and settings.s3_endpoint_url is not None:
            assert settings.s3_access_key is not None  # the settings validate it
            assert settings.s3_secret_key is not None
            self.s3 = S3ReportStore(
                str(settings.s3_endpoint_url).rstrip("/"),
                settings.s3_bucket,
                settings.s3_region,
                settings.s3_access_key.get_secret_value(),
                settings.s3_secret_key.get_secret_value(),
            )
        self.reports: ReportStore = (
            reports or self.s3 or LocalDiskReportStore(context.data_dir / "reports")
        )
        layout_root = settings.layout_root or context.settings.data_dir / BUILDER_LAYOUTS
        self.worker = ScanWorker(
            context.name,
            context.uow_factory,
            self.service_of,
            self.runner,
            self.reports,
            WorkerConfig.of(settings, layout_root),
        )
        self.watch = RescanWatch(
            context.uow_factory,
            self.service_of,
            self.runner,
            interval_s=settings.rescan_interval_s,
            wake_worker=self.worker.wake,
        )

    def service_of(self, uow: UnitOfWork) -> ScannerService:
        return ScannerService(
            uow, self.tables, verdict_environment=self.settings.verdict_environment
        )

    def handlers(self) -> Mapping[str, EventHandler]:
        return handlers.event_handlers(self.service_of, self.worker.wake)

    def routers(self) -> Sequence[APIRouter]:
        return api.routers(
            self.service_of,
            self.context.uow_factory,
            lambda: self.runner,
            self.context.require_caller(),
        )

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start report storage, run the worker and the rescan watch; stop them on exit."""
        if self.s3 is not None:
            await self.s3.start()
        tasks = [
            asyncio.create_task(self.worker.run(), name=f"{self.context.name}-scan-worker"),
            asyncio.create_task(self.watch.run(), name=f"{self.context.name}-rescan-watch"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.s3 is not None:
                await self.s3.close()


def make_plugin(name: str = "scanner", schema: str = SCHEMA) -> ServicePlugin:
    """The scanner called `name`, keeping its tables in `schema` (tests use throwaway ones).

    Raises ValueError for a name or schema the bus or database would refuse; a bad
    `MLPLANE_SCANNER_*` setting fails the host's start (`InvalidInput` naming it).
    """
    tables = define_tables(schema)
    hosted_of = PerHost(
        lambda context: HostedScanner(load_settings(ScannerSettings), context, tables)
    )

    def handlers_of(context: ServiceContext) -> Mapping[str, EventHandler]:
        return hosted_of(context).handlers()

    def routers_of(context: ServiceContext) -> Sequence[APIRouter]:
        return hosted_of(context).routers()

    @asynccontextmanager
    async def lifespan(context: ServiceContext) -> AsyncIterator[None]:
        try:
            async with hosted_of(context).running():
                yield
        finally:
            hosted_of.forget(context)

    return ServicePlugin(
        name=name,
        schema=schema,
        metadata=tables.metadata,
        migrations=MIGRATIONS,
        handlers=handlers_of,
        routers=routers_of,
        lifespan=lifespan,
    )


plugin = make_plugin()
