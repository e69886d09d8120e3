"""Artifact uploads and downloads over the registry's HTTP API.

The store behind them is the hosting's `RegistryArtifacts` (`artifacts.wiring`,
built by `main.build`): S3, or the local disk whose signed URLs `local_http` serves.

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

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import RedirectResponse
from mlplane_contracts.scopes import MODELS_READ, MODELS_WRITE
from mlplane_runtime.deps import ReadUow, Team, WriteUow, scoped

from mlplane_registry.api import ModelName, VersionNumber
from mlplane_registry.artifacts import UploadNotFound
from mlplane_registry.deps import Registry
from mlplane_registry.schemas import (
    ArtifactOut,
    DownloadOut,
    UploadComplete,
    UploadPartOut,
    UploadPlanOut,
    UploadStart,
)


def key_prefix(team: str, model: str) -> str:
    return f"teams/{team}/models/{model}/"


router = APIRouter(
    tags=["artifacts"], dependencies=[Depends(scoped(read=MODELS_READ, write=MODELS_WRITE))]
)
"""Upload and download routes; the local-disk store's signed URLs are `local_http`'s."""


@router.post("/models/{name}/uploads", status_code=201)
async def start_upload(
    name: ModelName, body: UploadStart, team: Team, registry: Registry
) -> UploadPlanOut:
    key = f"{key_prefix(team, name)}{uuid.uuid4().hex}/{body.filename}"
    plan = await registry.artifacts.started().start_upload(
        key,
        body.size_bytes,
        body.sha256,
        part_size=body.part_size or registry.settings.upload_part_size,
        expires_s=registry.settings.upload_url_expires_s,
    )
    return UploadPlanOut(
        upload_id=plan.upload_id,
        key=plan.key,
        size_bytes=plan.size,
        sha256=plan.sha256,
        part_size=plan.part_size,
        expires_s=plan.expires_s,
        parts=[UploadPartOut(number=p.number, url=p.url, size_bytes=p.size) for p in plan.parts],
    )


@router.post("/models/{name}/uploads/{upload_id}/complete")
async def complete_upload(
    name: ModelName,
    upload_id: str,
    body: UploadComplete,
    team: Team,
    registry: Registry,
    uow: WriteUow,
) -> ArtifactOut:
    store = registry.artifacts.started()
    # Checked before completing: another team's upload must stay untouched.
    if not (await store.upload_key(upload_id)).startswith(key_prefix(team, name)):
        raise UploadNotFound(f"model {name} of team {team} has no upload {upload_id!r}")
    info = await store.complete_upload(upload_id, [(p.number, p.etag) for p in body.parts])
    # Committed before answering (WriteUow): versions of this model may now point at it.
    # A lost commit is repaired by completing again (which verifies the object again).
    await registry.service(uow).record_verified_artifact(
        team, name, info.uri, info.size, info.sha256
    )
    return ArtifactOut(key=info.key, uri=info.uri, size_bytes=info.size, sha256=info.sha256)


@router.get("/models/{name}/versions/{version}/download", response_model=None)
async def download(
    name: ModelName,
    version: VersionNumber,
    team: Team,
    registry: Registry,
    uow: ReadUow,
    redirect: Annotated[bool, Query(description="answer 307 to the URL")] = False,
) -> DownloadOut | RedirectResponse:
    found = await registry.service(uow).get_version(team, name, version)
    expires_s = registry.settings.download_url_expires_s
    url = await registry.artifacts.started().download_url(
        registry.artifacts.key_of(found.artifact.uri), expires_s
    )
    if redirect:
        return RedirectResponse(url, status_code=307)
    return DownloadOut(
        url=url,
        expires_s=expires_s,
        size_bytes=found.artifact.size_bytes,
        sha256=found.artifact.sha256,
    )
