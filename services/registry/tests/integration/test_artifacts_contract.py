"""The behaviour every `ArtifactStore` promises, run on S3 (real SeaweedFS) and local disk.

Uploads go through the presigned part URLs with httpx, as CI sends them; the local
store's URLs are served by its router in an ASGI app.
"""

from __future__ import annotations

import hashlib
import random
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from mlplane_registry.artifacts import (
    ArtifactMismatch,
    ArtifactNotFound,
    ArtifactStore,
    InvalidUpload,
    UploadNotFound,
    UploadPlan,
)
from mlplane_registry.artifacts.local_disk import LocalDiskArtifactStore
from mlplane_registry.artifacts.local_http import build_router
from mlplane_registry.artifacts.s3 import S3ArtifactStore
from mlplane_runtime.problem import install_problem_handlers
from mlplane_testing.s3_server import S3Endpoint, delete_bucket, unique_bucket

MIB = 1024 * 1024
PART_SIZE = 6 * MIB  # 64 MiB is 10 full parts and a short last one


@dataclass(frozen=True)
class Artifact:
    data: bytes
    sha256: str

    @property
    def size(self) -> int:
        return len(self.data)


def make_artifact(size: int, seed: int) -> Artifact:
    data = random.Random(seed).randbytes(size)
    return Artifact(data=data, sha256=hashlib.sha256(data).hexdigest())


@pytest.fixture(scope="module")
def big() -> Artifact:
    return make_artifact(64 * MIB, seed=64)


@pytest.fixture(scope="module")
def small() -> Artifact:
    return make_artifact(7 * MIB + 3, seed=7)


@dataclass
class Backend:
    store: ArtifactStore
    http: httpx.AsyncClient


@pytest.fixture(params=["s3", "local_disk"])
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, s3_endpoint: S3Endpoint
) -> AsyncIterator[Backend]:
    if request.param == "s3":
        bucket = unique_bucket("artifacts")
        try:
            async with (
                S3ArtifactStore(
                    s3_endpoint.url,
                    bucket,
                    s3_endpoint.region,
                    s3_endpoint.access_key,
                    s3_endpoint.secret_key,
                ) as s3,
                httpx.AsyncClient(timeout=60) as http,
            ):
                yield Backend(store=s3, http=http)
        finally:
            await delete_bucket(s3_endpoint, bucket)
        return
    local = LocalDiskArtifactStore(tmp_path / "artifacts", base_url="http://registry.test/registry")
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(build_router(local), prefix="/registry")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=60) as http:
        yield Backend(store=local, http=http)


def new_key() -> str:
    return f"models/m-{uuid4().hex[:8]}/1/model.bin"


async def upload(
    backend: Backend,
    key: str,
    item: Artifact,
    *,
    declared_size: int | None = None,
    declared_sha256: str | None = None,
) -> tuple[UploadPlan, list[tuple[int, str]]]:
    """Declare `item` (or other values), then PUT its bytes to the part URLs as CI does.

    When the declared size differs from the real one, the last part takes whatever
    bytes are left, so the bytes that land are exactly `item.data`.
    """
    plan = await backend.store.start_upload(
        key,
        item.size if declared_size is None else declared_size,
        item.sha256 if declared_sha256 is None else declared_sha256,
        part_size=PART_SIZE,
    )
    view = memoryview(item.data)
    etags = []
    offset = 0
    for part in plan.parts:
        last = part.number == len(plan.parts)
        chunk = view[offset:] if last else view[offset : offset + part.size]
        offset += len(chunk)
        response = await backend.http.put(part.url, content=bytes(chunk))
        assert response.status_code == 200, response.text
        etags.append((part.number, response.headers["etag"]))
    return plan, etags


async def download(backend: Backend, url: str) -> tuple[int, str]:
    """Size and sha256 of what a GET of `url` returns."""
    hasher = hashlib.sha256()
    size = 0
    async with backend.http.stream("GET", url) as response:
        assert response.status_code == 200, await response.aread()
        async for chunk in response.aiter_bytes():
            hasher.update(chunk)
            size += len(chunk)
    return size, hasher.hexdigest()


class TestUpload:
    async def test_64_mib_artifact_uploaded_by_presigned_parts_is_verified_and_downloadable(
        self, backend: Backend, big: Artifact
    ) -> None:
        key = new_key()
        plan, etags = await upload(backend, key, big)
        assert len(plan.parts) == 11
        assert sum(p.size for p in plan.parts) == big.size

        info = await backend.store.complete_upload(plan, etags)

        assert (info.key, info.size, info.sha256) == (key, big.size, big.sha256)
        url = await backend.store.download_url(key, expires_s=60)
        assert await download(backend, url) == (big.size, big.sha256)

    async def test_upload_completes_from_its_id_alone(
        self, backend: Backend, small: Artifact
    ) -> None:
        key = new_key()
        plan, etags = await upload(backend, key, small)

        info = await backend.store.complete_upload(plan.upload_id, etags)

        assert (info.size, info.sha256) == (small.size, small.sha256)

    async def test_completing_twice_verifies_and_returns_the_same_artifact(
        self, backend: Backend, small: Artifact
    ) -> None:
        key = new_key()
        plan, etags = await upload(backend, key, small)
        first = await backend.store.complete_upload(plan, etags)

        again = await backend.store.complete_upload(plan.upload_id, etags)

        assert again == first

    async def test_sha256_is_normalized_to_lowercase(
        self, backend: Backend, small: Artifact
    ) -> None:
        plan, etags = await upload(backend, new_key(), small, declared_sha256=small.sha256.upper())

        info = await backend.store.complete_upload(plan, etags)

        assert info.sha256 == small.sha256


class TestMismatch:
    async def test_wrong_sha256_is_refused_naming_both_and_the_object_is_deleted(
        self, backend: Backend, small: Artifact
    ) -> None:
        key = new_key()
        declared = hashlib.sha256(b"something else").hexdigest()
        plan, etags = await upload(backend, key, small, declared_sha256=declared)

        with pytest.raises(ArtifactMismatch) as refused:
            await backend.store.complete_upload(plan, etags)

        assert declared in refused.value.detail
        assert small.sha256 in refused.value.detail
        problem = refused.value.problem()
        assert problem["status"] == 409
        assert (problem["field"], problem["declared"], problem["actual"]) == (
            "sha256",
            declared,
            small.sha256,
        )
        with pytest.raises(ArtifactNotFound):
            await backend.store.download_url(key)

    async def test_fewer_bytes_than_declared_are_refused_naming_both_sizes(
        self, backend: Backend, small: Artifact
    ) -> None:
        key = new_key()
        declared = small.size + 1
        plan, etags = await upload(backend, key, small, declared_size=declared)

        with pytest.raises(ArtifactMismatch) as refused:
            await backend.store.complete_upload(plan, etags)

        assert f"size {declared}" in refused.value.detail
        assert f"size {small.size}" in refused.value.detail
        assert refused.value.extensions["field"] == "size"
        with pytest.raises(ArtifactNotFound):
            await backend.store.download_url(key)

    async def test_more_bytes_than_declared_are_refused(
        self, backend: Backend, small: Artifact
    ) -> None:
        if isinstance(backend.store, LocalDiskArtifactStore):
            # The local store refuses the part PUT itself, before anything is completed.
            plan = await backend.store.start_upload(
                new_key(), small.size - 1, small.sha256, part_size=PART_SIZE
            )
            last = plan.parts[-1]
            before = sum(part.size for part in plan.parts[:-1])
            bytes_of_last = small.data[before:]
            assert len(bytes_of_last) > last.size
            for part in plan.parts[:-1]:
                start = (part.number - 1) * PART_SIZE
                chunk = small.data[start : start + part.size]
                assert (await backend.http.put(part.url, content=chunk)).status_code == 200
            refused_put = await backend.http.put(last.url, content=bytes_of_last)
            assert refused_put.status_code == 413, refused_put.text
            return
        plan, etags = await upload(backend, new_key(), small, declared_size=small.size - 1)

        with pytest.raises(ArtifactMismatch) as refused:
            await backend.store.complete_upload(plan, etags)

        assert refused.value.extensions["declared"] == small.size - 1
        assert refused.value.extensions["actual"] == small.size


class TestRefusedRequests:
    async def test_a_wrong_etag_is_refused(self, backend: Backend, small: Artifact) -> None:
        plan, etags = await upload(backend, new_key(), small)
        etags[0] = (1, '"' + "0" * 32 + '"')

        with pytest.raises(InvalidUpload):
            await backend.store.complete_upload(plan, etags)

    async def test_an_unknown_upload_is_not_found(self, backend: Backend) -> None:
        with pytest.raises(UploadNotFound):
            await backend.store.complete_upload("not-an-upload", [(1, "x")])

    @pytest.mark.parametrize("key", ["", "../etc/passwd", "a//b", "/abs", "a/./b", "sp ace"])
    async def test_unsafe_keys_are_refused(self, backend: Backend, key: str) -> None:
        with pytest.raises(InvalidUpload):
            await backend.store.start_upload(key, 1, "0" * 64)

    @pytest.mark.parametrize(
        ("size", "sha256", "part_size"),
        [(-1, "0" * 64, PART_SIZE), (1, "xyz", PART_SIZE), (1, "0" * 64, MIB)],
    )
    async def test_bad_declarations_are_refused(
        self, backend: Backend, size: int, sha256: str, part_size: int
    ) -> None:
        with pytest.raises(InvalidUpload):
            await backend.store.start_upload(new_key(), size, sha256, part_size=part_size)

    async def test_a_size_needing_more_than_10000_parts_names_the_part_size_to_use(
        self, backend: Backend
    ) -> None:
        with pytest.raises(InvalidUpload, match="use part_size >= "):
            await backend.store.start_upload(new_key(), 10_001 * 5 * MIB, "0" * 64, 5 * MIB)


class TestDeleteAndDownload:
    async def test_deleted_artifact_has_no_download_url(
        self, backend: Backend, small: Artifact
    ) -> None:
        key = new_key()
        plan, etags = await upload(backend, key, small)
        await backend.store.complete_upload(plan, etags)

        await backend.store.delete(key)
        await backend.store.delete(key)  # deleting twice is fine

        with pytest.raises(ArtifactNotFound):
            await backend.store.download_url(key)

    async def test_aborted_upload_cannot_be_completed(
        self, backend: Backend, small: Artifact
    ) -> None:
        plan, etags = await upload(backend, new_key(), small)

        await backend.store.abort_upload(plan)

        with pytest.raises(UploadNotFound):
            await backend.store.complete_upload(plan, etags)

    async def test_empty_artifact_round_trips(self, backend: Backend) -> None:
        empty = make_artifact(0, seed=0)
        key = new_key()
        plan, etags = await upload(backend, key, empty)

        info = await backend.store.complete_upload(plan, etags)

        assert info.size == 0
        assert await download(backend, await backend.store.download_url(key)) == (0, empty.sha256)


class TestMemory:
    async def test_verifying_64_mib_allocates_a_small_fraction_of_it(
        self, backend: Backend, big: Artifact
    ) -> None:
        plan, etags = await upload(backend, new_key(), big)

        tracemalloc.start()
        try:
            await backend.store.complete_upload(plan, etags)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        # Structural: chunks of 1 MiB are read and dropped; the object is 64 MiB.
        assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB while verifying 64 MiB"
