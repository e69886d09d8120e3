"""Blobs on the real registry: pushed whole or in chunks, read back, mounted, checked."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import AsyncIterator

import pytest
from mlplane_oci import (
    BlobNotFound,
    DigestMismatch,
    OciClient,
    RegistryCallFailed,
    UploadInterrupted,
)
from mlplane_testing.oci_registry import OciRegistryEndpoint, unique_repository
from starlette.requests import Request
from starlette.responses import Response

from .conftest import FAST_RETRY
from .servers import RegistryProxy, fail_first, serve

MiB = 2**20


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class TestPushBlob:
    async def test_pushed_blob_reads_back_with_its_size(
        self, client: OciClient, repository: str
    ) -> None:
        data = os.urandom(100_000)
        digest = await client.push_blob(repository, data)
        assert digest == sha256(data)
        assert await client.blob_size(repository, digest) == len(data)
        assert await client.get_blob(repository, digest) == data
        assert client.stats.count("POST", "blob-upload") == 1
        assert client.stats.count("PUT", "blob-upload") == 1
        assert client.stats.bytes_uploaded == len(data)

    async def test_a_blob_already_there_is_not_uploaded_again(
        self, client: OciClient, repository: str
    ) -> None:
        data = os.urandom(1000)
        await client.push_blob(repository, data)
        client.stats.reset()
        assert await client.push_blob(repository, data) == sha256(data)
        assert client.stats.total("blob-upload") == 0
        assert client.stats.blobs_already_present == 1

    async def test_a_failed_put_restarts_the_upload_from_the_post(
        self, oci_registry: OciRegistryEndpoint, repository: str
    ) -> None:
        proxy = RegistryProxy(oci_registry.url, rules=[fail_first("PUT")])
        with serve(proxy) as url:
            async with OciClient(url, retry=FAST_RETRY) as client:
                digest = await client.push_blob(repository, b"restarted")
                assert await client.get_blob(repository, digest) == b"restarted"
                assert client.stats.count("POST", "blob-upload") == 2
                assert client.stats.count("PUT", "blob-upload") == 2


class TestPushBlobStream:
    async def test_40_mib_in_16_mib_chunks_reads_back_intact(
        self, client: OciClient, repository: str
    ) -> None:
        data = os.urandom(40 * MiB)
        pushed = await client.push_blob_stream(repository, pieces(data, MiB), chunk_size=16 * MiB)
        assert (pushed.digest, pushed.size) == (sha256(data), len(data))
        assert client.stats.count("PATCH", "blob-upload") == 3  # 16 + 16 + 8 MiB
        assert client.stats.bytes_uploaded == len(data)
        assert await client.blob_size(repository, pushed.digest) == len(data)
        hasher, size = hashlib.sha256(), 0
        async for chunk in client.stream_blob(repository, pushed.digest):
            hasher.update(chunk)
            size += len(chunk)
        assert (size, "sha256:" + hasher.hexdigest()) == (len(data), pushed.digest)

    async def test_pieces_larger_than_a_chunk_are_split(
        self, client: OciClient, repository: str
    ) -> None:
        data = os.urandom(5 * MiB + 3)
        pushed = await client.push_blob_stream(repository, pieces(data, 5 * MiB), chunk_size=MiB)
        assert client.stats.count("PATCH", "blob-upload") == 6
        assert await client.get_blob(repository, pushed.digest) == data

    async def test_an_empty_stream_is_the_empty_blob(
        self, client: OciClient, repository: str
    ) -> None:
        pushed = await client.push_blob_stream(repository, pieces(b"", 1))
        assert (pushed.digest, pushed.size) == (sha256(b""), 0)
        assert await client.blob_size(repository, pushed.digest) == 0

    async def test_a_failed_patch_is_resent_after_asking_the_upload_status(
        self, oci_registry: OciRegistryEndpoint, repository: str
    ) -> None:
        proxy = RegistryProxy(oci_registry.url, rules=[fail_first("PATCH")])
        data = os.urandom(3 * MiB)
        with serve(proxy) as url:
            async with OciClient(url, retry=FAST_RETRY) as client:
                pushed = await client.push_blob_stream(
                    repository, pieces(data, 256 * 1024), chunk_size=MiB
                )
                assert pushed.digest == sha256(data)
                assert await client.get_blob(repository, pushed.digest) == data
                assert client.stats.count("PATCH", "blob-upload") == 4
                assert client.stats.count("GET", "blob-upload") == 1

    async def test_without_upload_status_a_failed_patch_is_a_retryable_interruption(
        self, oci_registry: OciRegistryEndpoint, repository: str
    ) -> None:
        def no_status(request: Request) -> Response | None:
            if request.method == "GET" and "/blobs/uploads/" in request.url.path:
                return Response(status_code=405)
            return None

        proxy = RegistryProxy(oci_registry.url, rules=[fail_first("PATCH"), no_status])
        with serve(proxy) as url:
            async with OciClient(url, retry=FAST_RETRY) as client:
                with pytest.raises(UploadInterrupted) as caught:
                    await client.push_blob_stream(
                        repository, pieces(os.urandom(2 * MiB), MiB), chunk_size=MiB
                    )
        assert caught.value.retryable
        assert "restart the upload" in str(caught.value)
        assert f"PATCH 127.0.0.1:{url.rsplit(':', 1)[1]}/v2/{repository}/blobs/uploads/" in str(
            caught.value
        )

    async def test_a_failing_source_stops_the_upload_with_its_own_error(
        self, client: OciClient, repository: str
    ) -> None:
        async def source() -> AsyncIterator[bytes]:
            yield os.urandom(3 * MiB)  # two PATCHes sent or in flight
            raise OSError("artifact store went away")

        with pytest.raises(OSError, match="artifact store went away"):
            await client.push_blob_stream(repository, source(), chunk_size=MiB)
        assert client.stats.count("PUT", "blob-upload") == 0
        assert client.stats.blobs_uploaded == 0


class TestPushBlobStreamedInOnePatch:
    async def test_a_stream_goes_in_one_patch_and_reads_back_intact(
        self, client: OciClient, repository: str
    ) -> None:
        data = os.urandom(9 * MiB + 5)
        pushed = await client.push_blob_stream(repository, pieces(data, MiB), chunk_size=None)
        assert (pushed.digest, pushed.size) == (sha256(data), len(data))
        assert client.stats.count("PATCH", "blob-upload") == 1
        assert client.stats.bytes_uploaded == len(data)
        assert await client.get_blob(repository, pushed.digest) == data

    async def test_the_producers_digest_is_used_and_the_registry_checks_it(
        self, client: OciClient, repository: str
    ) -> None:
        data = os.urandom(MiB)
        pushed = await client.push_blob_stream(
            repository, pieces(data, 4096), chunk_size=None, digest=lambda: sha256(data)
        )
        assert await client.get_blob(repository, pushed.digest) == data
        # A digest that is not the bytes' is refused by the registry, not stored.
        wrong = sha256(b"other bytes")
        with pytest.raises(RegistryCallFailed, match="DIGEST_INVALID"):
            await client.push_blob_stream(
                repository, pieces(data, 4096), chunk_size=None, digest=lambda: wrong
            )
        with pytest.raises(RegistryCallFailed, match="DIGEST_INVALID"):
            await client.push_blob_stream(
                repository, pieces(data, 4096), chunk_size=MiB // 2, digest=lambda: wrong
            )
        assert await client.blob_size(repository, wrong) is None

    async def test_an_empty_stream_is_the_empty_blob(
        self, client: OciClient, repository: str
    ) -> None:
        pushed = await client.push_blob_stream(repository, pieces(b"", 1), chunk_size=None)
        assert (pushed.digest, pushed.size) == (sha256(b""), 0)
        assert await client.blob_size(repository, pushed.digest) == 0

    async def test_a_refused_patch_is_a_retryable_interruption(
        self, oci_registry: OciRegistryEndpoint, repository: str
    ) -> None:
        proxy = RegistryProxy(oci_registry.url, rules=[fail_first("PATCH")])
        with serve(proxy) as url:
            async with OciClient(url, retry=FAST_RETRY) as client:
                with pytest.raises(UploadInterrupted) as caught:
                    await client.push_blob_stream(
                        repository, pieces(os.urandom(2 * MiB), MiB), chunk_size=None
                    )
                assert client.stats.count("PATCH", "blob-upload") == 1  # not sent twice
                assert client.stats.count("PUT", "blob-upload") == 0
        assert caught.value.retryable
        assert "restart the upload" in str(caught.value)

    async def test_a_failing_source_stops_the_upload_with_its_own_error(
        self, client: OciClient, repository: str
    ) -> None:
        async def source() -> AsyncIterator[bytes]:
            yield os.urandom(MiB)
            raise OSError("artifact store went away")

        with pytest.raises(OSError, match="artifact store went away"):
            await client.push_blob_stream(repository, source(), chunk_size=None)
        assert client.stats.count("PUT", "blob-upload") == 0
        assert client.stats.blobs_uploaded == 0


class TestReadBlob:
    async def test_missing_blob_names_the_call(self, client: OciClient, repository: str) -> None:
        digest = sha256(b"never pushed")
        assert await client.blob_size(repository, digest) is None
        with pytest.raises(BlobNotFound) as caught:
            await client.get_blob(repository, digest)
        host = client.base_url.split("://", 1)[1]
        assert str(caught.value).startswith(f"GET {host}/v2/{repository}/blobs/{digest}: 404 ")
        assert "BLOB_UNKNOWN" in caught.value.codes

    async def test_content_not_matching_its_digest_is_refused(
        self, oci_registry: OciRegistryEndpoint, repository: str
    ) -> None:
        proxy = RegistryProxy(oci_registry.url, corrupt=lambda r: "/blobs/sha256:" in r.url.path)
        with serve(proxy) as url:
            async with OciClient(url, retry=FAST_RETRY) as client:
                digest = await client.push_blob(repository, b"the real bytes")
                with pytest.raises(DigestMismatch, match=f"expected {digest}"):
                    await client.get_blob(repository, digest)
                received: list[bytes] = []

                async def copy() -> None:
                    async for chunk in client.stream_blob(repository, digest):
                        received.append(chunk)

                with pytest.raises(DigestMismatch):
                    await copy()
                assert b"".join(received) != b"the real bytes"  # delivered, then refused


class TestMountBlob:
    async def test_cross_repository_mount_is_counted_as_a_mount_not_an_upload(
        self, client: OciClient, repository: str
    ) -> None:
        data = os.urandom(2 * MiB)
        digest = await client.push_blob(repository, data)
        target = unique_repository()
        client.stats.reset()
        assert await client.mount_blob(target, digest, repository) is True
        assert client.stats.count("POST", "mount") == 1
        assert client.stats.total("blob-upload") == 0
        assert client.stats.bytes_uploaded == 0
        assert client.stats.blobs_mounted == 1
        assert await client.blob_size(target, digest) == len(data)

    async def test_unknown_blob_is_not_mounted_and_the_started_upload_is_cancelled(
        self, client: OciClient, repository: str
    ) -> None:
        missing = sha256(b"nowhere")
        assert await client.mount_blob(unique_repository(), missing, repository) is False
        assert client.stats.count("DELETE", "blob-upload") == 1
        assert client.stats.blobs_mounted == 0


class TestStreamMemory:
    async def test_memory_stays_near_a_few_chunks_whatever_the_blob_size(
        self, client: OciClient, repository: str
    ) -> None:
        chunk = MiB
        piece = os.urandom(256 * 1024)

        async def source() -> AsyncIterator[bytes]:
            for _ in range(256):  # 64 MiB, the same piece again: nothing kept by the test
                yield piece

        tracemalloc.start()
        try:
            pushed = await client.push_blob_stream(repository, source(), chunk_size=chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert pushed.size == 64 * MiB
        assert peak < 8 * chunk, f"peak {peak / MiB:.1f} MiB for {chunk / MiB:.0f} MiB chunks"
