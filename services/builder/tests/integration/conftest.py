"""Fixtures of the builder's integration tests: the real OCI registry and S3 server,
a small base image pushed there, artifacts uploaded per test."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aioboto3
import pytest
from mlplane_oci import OciClient
from mlplane_testing.oci_registry import (  # noqa: F401 (a fixture: the real registry)
    OciRegistryEndpoint,
    oci_registry,
    unique_repository,
)
from mlplane_testing.s3_server import (  # noqa: F401 (a fixture: the real S3 server)
    S3Endpoint,
    delete_bucket,
    s3_endpoint,
    unique_bucket,
)

from .images import push_base_image


@dataclass(frozen=True)
class Artifact:
    uri: str
    sha256: str
    size: int
    content: bytes


UploadArtifact = Callable[[bytes, str], Awaitable[Artifact]]


@pytest.fixture(scope="session")
async def base_image(oci_registry: OciRegistryEndpoint) -> str:  # noqa: F811
    """A two-layer linux/amd64 base image in the test registry, pinned by digest."""
    repository = unique_repository("base")
    async with OciClient(oci_registry.url) as client:
        digest = await push_base_image(client, repository)
    return f"{oci_registry.host}/{repository}@{digest}"


@pytest.fixture
async def artifact_bucket(s3_endpoint: S3Endpoint) -> AsyncIterator[str]:  # noqa: F811
    """A fresh bucket standing for the registry's S3 store; removed afterwards."""
    bucket = unique_bucket("builder")
    try:
        yield bucket
    finally:
        await delete_bucket(s3_endpoint, bucket)


@pytest.fixture
def s3_settings(s3_endpoint: S3Endpoint, artifact_bucket: str) -> dict[str, Any]:  # noqa: F811
    """The builder's MLPLANE_BUILDER_S3_* settings for the test S3 server, the test's
    bucket as the registry's store."""
    return {
        "s3_endpoint_url": s3_endpoint.url,
        "s3_region": s3_endpoint.region,
        "s3_access_key": s3_endpoint.access_key,
        "s3_secret_key": s3_endpoint.secret_key,
        "registry_artifact_store": f"s3://{artifact_bucket}/",
    }


@pytest.fixture
async def upload_artifact(
    s3_endpoint: S3Endpoint,  # noqa: F811
    artifact_bucket: str,
    team: str,
) -> AsyncIterator[UploadArtifact]:
    """Upload bytes as the test team's `fraud` artifact to the registry's store."""
    bucket = artifact_bucket
    session = aioboto3.Session(
        aws_access_key_id=s3_endpoint.access_key,
        aws_secret_access_key=s3_endpoint.secret_key,
        region_name=s3_endpoint.region,
    )
    async with session.client("s3", endpoint_url=s3_endpoint.url) as s3:
        await s3.create_bucket(Bucket=bucket)

        async def upload(content: bytes, name: str) -> Artifact:
            key = f"teams/{team}/models/fraud/{os.urandom(4).hex()}/{name}"
            await s3.put_object(Bucket=bucket, Key=key, Body=content)
            return Artifact(
                f"s3://{bucket}/{key}", hashlib.sha256(content).hexdigest(), len(content), content
            )

        yield upload
