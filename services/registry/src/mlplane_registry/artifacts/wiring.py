"""The artifact store of one hosted registry, built from its settings by `main.build`.

With `MLPLANE_REGISTRY_S3_ENDPOINT_URL` an `S3ArtifactStore` (opened by `running`, the
registry's lifespan, and closed on the way out), without it a `LocalDiskArtifactStore`
under the service's data directory whose signed URLs `local_http.build_router` serves.
`sweep_expired_uploads` is the worker dropping uploads not completed within
`MLPLANE_REGISTRY_UPLOAD_EXPIRY_S`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import unquote

from mlplane_runtime.errors import Unavailable
from mlplane_runtime.service import ServiceContext

from mlplane_registry.artifacts.errors import ArtifactNotFound
from mlplane_registry.artifacts.local_disk import LocalDiskArtifactStore
from mlplane_registry.artifacts.s3 import S3ArtifactStore
from mlplane_registry.artifacts.store import ArtifactStore
from mlplane_registry.settings import RegistrySettings

_log = logging.getLogger("mlplane.registry")


class RegistryArtifacts:
    """The artifact store of one hosted registry: built from settings, no I/O until `start`."""

    def __init__(self, settings: RegistrySettings, context: ServiceContext) -> None:
        self.settings = settings
        self.store: ArtifactStore
        self._uri_prefix: str
        if settings.s3_endpoint_url is not None:
            assert settings.s3_access_key is not None  # the settings validate it
            assert settings.s3_secret_key is not None
            public = settings.s3_public_endpoint_url
            s3 = S3ArtifactStore(
                str(settings.s3_endpoint_url).rstrip("/"),
                settings.s3_bucket,
                settings.s3_region,
                settings.s3_access_key.get_secret_value(),
                settings.s3_secret_key.get_secret_value(),
                public_endpoint_url=None if public is None else str(public).rstrip("/"),
                upload_expiry_s=settings.upload_expiry_s,
                prefix=settings.s3_prefix,
            )
            self.store, self.local = s3, None
            self._uri_prefix = s3.uri("")
        else:
            runtime = context.settings
            base_url = (
                str(settings.local_public_url)
                if settings.local_public_url is not None
                else f"http://{runtime.http_host}:{runtime.http_port}/{context.name}"
            )
            local = LocalDiskArtifactStore(
                context.data_dir / "artifacts",
                base_url=base_url,
                upload_expiry_s=settings.upload_expiry_s,
            )
            self.store, self.local = local, local
            self._uri_prefix = (local.root / "objects").resolve().as_uri() + "/"
        self._started = self.local is not None

    async def start(self) -> None:
        """Open the S3 client and make sure the bucket exists. Raises `Unavailable`."""
        if isinstance(self.store, S3ArtifactStore):
            await self.store.start()
        self._started = True

    async def close(self) -> None:
        if isinstance(self.store, S3ArtifactStore):
            self._started = False
            await self.store.close()

    def started(self) -> ArtifactStore:
        if not self._started:
            raise Unavailable("the registry's artifact store is not started")
        return self.store

    @property
    def uri_prefix(self) -> str:
        """What every URI of this store starts with (and so every verified upload's)."""
        return self._uri_prefix

    def key_of(self, uri: str) -> str:
        """The key of an artifact URI in this store. Raises `ArtifactNotFound`."""
        if not uri.startswith(self._uri_prefix):
            raise ArtifactNotFound(
                f"artifact {uri} is not in the registry's storage; fetch it from where it is",
                uri=uri,
            )
        rest = uri[len(self._uri_prefix) :]
        return unquote(rest) if self.local is not None else rest

    async def sweep_expired_uploads(self) -> int:
        """Drop the uploads older than the upload expiry; how many. Raises `Unavailable`."""
        swept = await self.started().sweep_expired_uploads()
        if swept:
            _log.info("dropped %d expired artifact upload(s)", swept)
        return swept


@asynccontextmanager
async def running(artifacts: RegistryArtifacts) -> AsyncIterator[None]:
    """The store started (S3: client open, bucket there) while the registry runs, closed after.

    Raises `Unavailable` when the store cannot be reached.
    """
    await artifacts.start()
    try:
        yield
    finally:
        await artifacts.close()


async def sweep_expired_uploads(artifacts: RegistryArtifacts) -> None:
    """The registry's worker: drops expired uploads every `upload_sweep_interval_s`, forever."""
    while True:
        try:
            await artifacts.sweep_expired_uploads()
        except Exception:
            # Storage down or a stray file: the next round tries again.
            _log.exception("sweeping expired artifact uploads failed")
        await asyncio.sleep(artifacts.settings.upload_sweep_interval_s)
