"""The HTTP side of `LocalDiskArtifactStore`: serves its signed part and object URLs.

Mount `build_router(store)` where the store's `base_url` points (the registry's
API prefix). Bodies stream to and from disk; nothing is held in memory.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from mlplane_runtime.body_limit import max_body_bytes

from mlplane_registry.artifacts.local_disk import LocalDiskArtifactStore
from mlplane_registry.artifacts.store import MAX_PART_SIZE


def build_router(store: LocalDiskArtifactStore) -> APIRouter:
    """Routes `PUT /artifacts/uploads/{id}/parts/{n}` and `GET /artifacts/objects/{key}`.

    A bad or expired signature is 403, an unknown upload or object 404 (raised as
    `MlplaneError`s for the service's problem+json handler).
    """
    router = APIRouter()

    # A part streams to disk: the runtime's 1 MiB body limit would refuse parts.
    @router.put(
        "/artifacts/uploads/{upload_id}/parts/{number}", openapi_extra=max_body_bytes(MAX_PART_SIZE)
    )
    async def put_part(
        upload_id: str,
        number: int,
        request: Request,
        expires: Annotated[int, Query()],
        signature: Annotated[str, Query()],
    ) -> Response:
        store.check_signature("PUT", store.part_path(upload_id, number), expires, signature)
        etag = await store.write_part(upload_id, number, request.stream())
        return Response(status_code=200, headers={"ETag": f'"{etag}"'})

    @router.get("/artifacts/objects/{key:path}")
    async def get_object(
        key: str,
        expires: Annotated[int, Query()],
        signature: Annotated[str, Query()],
    ) -> FileResponse:
        store.check_signature("GET", store.object_url_path(key), expires, signature)
        return FileResponse(store.object_file(key), media_type="application/octet-stream")

    return router
