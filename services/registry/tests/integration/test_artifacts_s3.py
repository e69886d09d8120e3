"""What only `S3ArtifactStore` does, against the real S3 server (SeaweedFS)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aioboto3
import pytest
from botocore.exceptions import ClientError
from mlplane_registry.artifacts import UploadExpired
from mlplane_registry.artifacts.s3 import S3ArtifactStore
from mlplane_runtime.errors import Unavailable
from mlplane_testing.s3_server import S3Endpoint, delete_bucket, unique_bucket


def store_for(endpoint: S3Endpoint, bucket: str, **options: Any) -> S3ArtifactStore:
    return S3ArtifactStore(
        endpoint.url,
        bucket,
        endpoint.region,
        endpoint.access_key,
        endpoint.secret_key,
        **options,
    )


@pytest.fixture
async def bucket(s3_endpoint: S3Endpoint) -> AsyncIterator[str]:
    name = unique_bucket("s3")
    try:
        yield name
    finally:
        await delete_bucket(s3_endpoint, name)


async def bucket_exists(endpoint: S3Endpoint, name: str) -> bool:
    session = aioboto3.Session(
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        region_name=endpoint.region,
    )
    async with session.client("s3", endpoint_url=endpoint.url) as s3:
        try:
            await s3.head_bucket(Bucket=name)
        except ClientError:
            return False
    return True


class TestStart:
    async def test_start_creates_the_missing_bucket_and_a_second_store_reuses_it(
        self, s3_endpoint: S3Endpoint, bucket: str
    ) -> None:
        assert not await bucket_exists(s3_endpoint, bucket)

        async with store_for(s3_endpoint, bucket), store_for(s3_endpoint, bucket):
            assert await bucket_exists(s3_endpoint, bucket)

    async def test_a_store_not_started_says_so(self, s3_endpoint: S3Endpoint) -> None:
        with pytest.raises(RuntimeError, match="start"):
            await store_for(s3_endpoint, unique_bucket()).delete("k")

    async def test_unreachable_storage_is_unavailable(self) -> None:
        store = S3ArtifactStore("http://127.0.0.1:9", unique_bucket(), "us-east-1", "a", "b")

        with pytest.raises(Unavailable):
            await store.start()


class TestPresignedUrls:
    async def test_urls_are_signed_for_the_public_endpoint(
        self, s3_endpoint: S3Endpoint, bucket: str
    ) -> None:
        public = "https://artifacts.example.com"
        async with store_for(s3_endpoint, bucket, public_endpoint_url=public) as store:
            plan = await store.start_upload("m/1/model.bin", 10, hashlib.sha256(b"").hexdigest())
            await store.abort_upload(plan)

        url = urlsplit(plan.parts[0].url)
        assert (url.scheme, url.netloc) == ("https", "artifacts.example.com")
        assert "X-Amz-Signature=" in url.query
        assert f"/{bucket}/m/1/model.bin" == url.path

    async def test_upload_id_and_uri_name_the_bucket_and_key(
        self, s3_endpoint: S3Endpoint, bucket: str
    ) -> None:
        async with store_for(s3_endpoint, bucket) as store:
            plan = await store.start_upload("m/1/model.bin", 0, hashlib.sha256(b"").hexdigest())
            await store.abort_upload(plan)
            await store.abort_upload(plan)  # aborting twice is fine

        assert store.uri("m/1/model.bin") == f"s3://{bucket}/m/1/model.bin"
        assert len(plan.parts) == 1


async def open_uploads(endpoint: S3Endpoint, bucket: str) -> list[str]:
    session = aioboto3.Session(
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        region_name=endpoint.region,
    )
    async with session.client("s3", endpoint_url=endpoint.url) as s3:
        listed = await s3.list_multipart_uploads(Bucket=bucket)
    return [upload["Key"] for upload in listed.get("Uploads", [])]


class TestExpiry:
    async def test_an_expired_upload_is_refused_at_completion_and_aborted(
        self, s3_endpoint: S3Endpoint, bucket: str
    ) -> None:
        data = b"weights" * 100
        async with store_for(s3_endpoint, bucket, upload_expiry_s=1) as store:
            plan = await store.start_upload(
                "teams/a/models/m/x/model.bin", len(data), hashlib.sha256(data).hexdigest()
            )
            await asyncio.sleep(2.1)

            with pytest.raises(UploadExpired):
                await store.complete_upload(plan, [(1, "0" * 32)])

        assert await open_uploads(s3_endpoint, bucket) == []

    async def test_the_sweep_aborts_expired_multipart_uploads_and_keeps_fresh_ones(
        self, s3_endpoint: S3Endpoint, bucket: str
    ) -> None:
        async with store_for(s3_endpoint, bucket, upload_expiry_s=2) as store:
            await store.start_upload("teams/a/models/m/old/model.bin", 10, "0" * 64)
            await asyncio.sleep(3.1)
            await store.start_upload("teams/a/models/m/new/model.bin", 10, "0" * 64)

            assert await store.sweep_expired_uploads() == 1

        assert await open_uploads(s3_endpoint, bucket) == ["teams/a/models/m/new/model.bin"]
