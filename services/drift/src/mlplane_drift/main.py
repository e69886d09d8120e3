"""The drift service as a plug-in of the mlplane platform: `plugin` is its entry point,
`build` its one composition root (the host calls it once per hosting; tests too).

A hosting is its settings, its object storage (S3, or the local disk when
`MLPLANE_DRIFT_S3_ENDPOINT_URL` is unset), a reference-profile cache, the verdict
worker (a `ServiceWorker`) and a lifespan opening the S3 client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from mlplane_runtime.s3 import S3Connection
from mlplane_runtime.service import ServiceContext, ServiceParts, ServicePlugin, ServiceWorker
from mlplane_runtime.settings import load_settings
from mlplane_runtime.uow import UnitOfWork

from mlplane_drift import api, handlers
from mlplane_drift.blobs import BlobStore, LocalDiskBlobStore, S3BlobStore
from mlplane_drift.deps import HostedDrift
from mlplane_drift.detect import DriftConfig
from mlplane_drift.profiles import ProfileCache
from mlplane_drift.service import DriftService, utc_now
from mlplane_drift.settings import DriftSettings
from mlplane_drift.store import SCHEMA, DriftTables, define_tables
from mlplane_drift.worker import VerdictWorker

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def build(
    context: ServiceContext,
    tables: DriftTables,
    settings: DriftSettings | None = None,
    *,
    blobs: BlobStore | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> ServiceParts:
    """One hosted drift service on `tables`: settings from `MLPLANE_DRIFT_*` unless given.

    `blobs` replaces the object storage the settings describe (tests share a started
    one, which the lifespan then leaves alone); `clock` is the service's time (windows
    open, close and are judged by it). Connects to nothing. Raises InvalidInput naming
    each bad variable.
    """
    settings = settings or load_settings(DriftSettings)
    s3 = _s3(settings) if blobs is None else None
    store: BlobStore = blobs or s3 or LocalDiskBlobStore(context.data_dir / "objects")
    profiles = ProfileCache(store, settings.profile_cache_size)
    worker = VerdictWorker(
        context.name,
        context.uow_factory,
        tables,
        settings,
        store,
        profiles,
        DriftConfig(share_threshold=settings.drift_share),
        clock,
    )
    drift = HostedDrift(context.name, tables, settings, store, profiles, worker, clock)

    def service_of(uow: UnitOfWork) -> DriftService:
        return drift.service(uow)

    return ServiceParts(
        handlers=handlers.event_handlers(context.name, service_of, worker.wake),
        routers=[api.router, api.intake_router],
        workers=[
            ServiceWorker("verdict-worker", worker.run),
            ServiceWorker("partial-compaction", worker.run_compaction),
        ],
        lifespan=None if s3 is None else _started(s3),
        resources=drift,
    )


def _s3(settings: DriftSettings) -> S3BlobStore | None:
    if settings.s3_endpoint_url is None:
        return None
    assert settings.s3_access_key is not None  # the settings validate it
    assert settings.s3_secret_key is not None
    connection = S3Connection(
        str(settings.s3_endpoint_url).rstrip("/"),
        settings.s3_region,
        settings.s3_access_key.get_secret_value(),
        settings.s3_secret_key.get_secret_value(),
    )
    return S3BlobStore(connection, settings.s3_space())


@asynccontextmanager
async def _started(blobs: S3BlobStore) -> AsyncIterator[None]:
    """The S3 client, open while the service is hosted (its worker runs inside)."""
    await blobs.start()
    try:
        yield
    finally:
        await blobs.close()


def make_plugin(name: str = "drift", schema: str = SCHEMA) -> ServicePlugin:
    """The drift service called `name`, keeping its tables in `schema` (tests use
    throwaway ones). Raises ValueError for a name or schema the bus or database would
    refuse; a bad `MLPLANE_DRIFT_*` setting fails the host's start."""
    tables = define_tables(schema)
    return ServicePlugin(
        name=name,
        schema=schema,
        metadata=tables.metadata,
        migrations=MIGRATIONS,
        build=lambda context: build(context, tables),
    )


plugin = make_plugin()
