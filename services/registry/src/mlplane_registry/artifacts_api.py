"""Artifact uploads and downloads over the registry's HTTP API, and the store behind them.

`RegistryArtifacts` is built per hosted registry from its settings: with
`MLPLANE_REGISTRY_S3_ENDPOINT_URL` an `S3ArtifactStore` (started in the plug-in's
lifespan, closed on the way out), without it a `LocalDiskArtifactStore` under the
service's data directory whose signed URLs `local_http.build_router` serves.

Routes (under `/registry`, team from `X-Mlplane-Team`):

- `POST /models/{name}/uploads`: declared size and sha256 -> an upload plan, one
  presigned PUT URL per part;
- `POST /models/{name}/uploads/{upload_id}/complete`: the parts' ETags -> the
  verified artifact (409 `artifact-mismatch` naming declared and actual value);
- `GET /models/{name}/versions/{version}/download`: a presigned GET URL, or a 307
  redirect to it with `?redirect=true`.

Keys are `teams/<team>/models/<model>/<random>/<filename>`: teams never share keys.
A completed upload is recorded as verified for its team and model: that is what a
version may point at in the registry's store (`domain.artifacts`). Uploads not
completed within `MLPLANE_REGISTRY_UPLOAD_EXPIRY_S` are refused at completion and
swept away every `MLPLANE_REGISTRY_UPLOAD_SWEEP_INTERVAL_S` while the registry runs.
"""

# No `from __future__ import annotations`: FastAPI resolves the dependency aliases below.
import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Query
from fastapi.responses import RedirectResponse
from mlplane_contracts.scopes import MODELS_READ, MODELS_WRITE
from mlplane_runtime.caller import CallerDependencies, service_caller
from mlplane_runtime.errors import Unavailable
from mlplane_runtime.service import ServiceContext
from mlplane_runtime.uow import UnitOfWork, UnitOfWorkFactory

from mlplane_registry.api import ModelName, VersionNumber
from mlplane_registry.artifacts import ArtifactNotFound, ArtifactStore, UploadNotFound
from mlplane_registry.artifacts.local_disk import LocalDiskArtifactStore
from mlplane_registry.artifacts.local_http import build_router
from mlplane_registry.artifacts.s3 import S3ArtifactStore
from mlplane_registry.schemas import (
    ArtifactOut,
    DownloadOut,
    UploadComplete,
    UploadPartOut,
    UploadPlanOut,
    UploadStart,
)
from mlplane_registry.service import RegistryService
from mlplane_registry.settings import RegistrySettings
from mlplane_registry.store import RegistryTables

_log = logging.getLogger("mlplane.registry")


def key_prefix(team: str, model: str) -> str:
    return f"teams/{team}/models/{model}/"


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
    """The store started, and expired uploads swept periodically, while the registry runs."""
    await artifacts.start()
    sweeper = asyncio.create_task(_sweep_periodically(artifacts), name="registry-upload-sweep")
    try:
        yield
    finally:
        sweeper.cancel()
        await asyncio.gather(sweeper, return_exceptions=True)
        await artifacts.close()


async def _sweep_periodically(artifacts: RegistryArtifacts) -> None:
    while True:
        try:
            await artifacts.sweep_expired_uploads()
        except Exception:
            # Storage down or a stray file: the next round tries again.
            _log.exception("sweeping expired artifact uploads failed")
        await asyncio.sleep(artifacts.settings.upload_sweep_interval_s)


def routers(
    tables: RegistryTables,
    uow_factory: UnitOfWorkFactory,
    artifacts: RegistryArtifacts,
    caller: CallerDependencies | None = None,
) -> Sequence[APIRouter]:
    """The upload and download routes, and the local-disk URLs when that store is used.

    `caller` verifies the gateway's identity (default: the key the environment sets);
    the local-disk URLs need none: their signature is their authority.
    """
    caller = caller or service_caller("registry")
    router = APIRouter(
        tags=["artifacts"],
        dependencies=[Depends(caller.scoped(read=MODELS_READ, write=MODELS_WRITE))],
    )
    settings = artifacts.settings
    Team = Annotated[str, Depends(caller.team)]

    async def unit_of_work() -> AsyncIterator[UnitOfWork]:
        async with uow_factory() as uow:
            yield uow

    Uow = Annotated[UnitOfWork, Depends(unit_of_work)]

    @router.post("/models/{name}/uploads", status_code=201)
    async def start_upload(name: ModelName, body: UploadStart, team: Team) -> UploadPlanOut:
        key = f"{key_prefix(team, name)}{uuid.uuid4().hex}/{body.filename}"
        plan = await artifacts.started().start_upload(
            key,
            body.size_bytes,
            body.sha256,
            part_size=body.part_size or settings.upload_part_size,
            expires_s=settings.upload_url_expires_s,
        )
        return UploadPlanOut(
            upload_id=plan.upload_id,
            key=plan.key,
            size_bytes=plan.size,
            sha256=plan.sha256,
            part_size=plan.part_size,
            expires_s=plan.expires_s,
            parts=[
                UploadPartOut(number=p.number, url=p.url, size_bytes=p.size) for p in plan.parts
            ],
        )

    @router.post("/models/{name}/uploads/{upload_id}/complete")
    async def complete_upload(
        name: ModelName, upload_id: str, body: UploadComplete, team: Team, uow: Uow
    ) -> ArtifactOut:
        store = artifacts.started()
        # Checked before completing: another team's upload must stay untouched.
        if not (await store.upload_key(upload_id)).startswith(key_prefix(team, name)):
            raise UploadNotFound(f"model {name} of team {team} has no upload {upload_id!r}")
        info = await store.complete_upload(upload_id, [(p.number, p.etag) for p in body.parts])
        # Committed before answering: versions of this model may now point at it. A
        # lost commit is repaired by completing again (which verifies the object again).
        await RegistryService(uow, tables).record_verified_artifact(
            team, name, info.uri, info.size, info.sha256
        )
        await uow.commit()
        return ArtifactOut(key=info.key, uri=info.uri, size_bytes=info.size, sha256=info.sha256)

    @router.get("/models/{name}/versions/{version}/download", response_model=None)
    async def download(
        name: ModelName,
        version: VersionNumber,
        team: Team,
        uow: Uow,
        redirect: Annotated[bool, Query(description="answer 307 to the URL")] = False,
    ) -> DownloadOut | RedirectResponse:
        found = await RegistryService(uow, tables).get_version(team, name, version)
        expires_s = settings.download_url_expires_s
        url = await artifacts.started().download_url(
            artifacts.key_of(found.artifact.uri), expires_s
        )
        if redirect:
            return RedirectResponse(url, status_code=307)
        return DownloadOut(
            url=url,
            expires_s=expires_s,
            size_bytes=found.artifact.size_bytes,
            sha256=found.artifact.sha256,
        )

    if artifacts.local is not None:
        return [router, build_router(artifacts.local)]
    return [router]
