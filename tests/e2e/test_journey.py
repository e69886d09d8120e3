"""The whole journey, webhook to rollback on drift, in one trace: as `make run` starts the
platform (`mlplane up`: one process, the in-process bus) and as it is deployed (`mlplane
up --processes`: a process per service, RabbitMQ). The steps and the trace's checks are
the same (journey.py); only the launch differs.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from mlplane_runtime.s3 import S3Connection, s3_client
from mlplane_testing.oci_registry import OciRegistryEndpoint, oci_registry
from mlplane_testing.rabbitmq_vhost import rabbitmq_vhost
from mlplane_testing.s3_server import S3Endpoint, delete_bucket, s3_endpoint, unique_bucket

from .conftest import throwaway_database
from .journey import check_trace, journey_trace, launched, run_to_rollback

__all__ = ["oci_registry", "s3_endpoint"]  # fixtures: the real registry and S3 server


@pytest.fixture
async def bucket(s3_endpoint: S3Endpoint) -> AsyncIterator[str]:
    """The platform's bucket, made by the platform at start and deleted after: SeaweedFS
    gives each bucket volumes of its own, so none may be left behind."""
    name = unique_bucket("journey")
    try:
        yield name
    finally:
        await delete_bucket(s3_endpoint, name)


async def _top_prefixes(s3: S3Endpoint, bucket: str) -> set[str]:
    """The `<service>/teams/<team>/` prefixes the bucket's keys lie under."""
    async with s3_client(S3Connection(s3.url, s3.region, s3.access_key, s3.secret_key)) as client:
        keys = [
            item["Key"]
            async for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])
        ]
    return {"/".join(key.split("/")[:3]) + "/" for key in keys}


@pytest.fixture
def gitops(tmp_path: Path) -> Path:
    remote = tmp_path / "gitops.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(remote)], check=True)
    return remote


@pytest.mark.timeout(900)
@pytest.mark.parametrize("processes", [False, True], ids=["make-run", "processes"])
async def test_a_version_goes_from_webhook_to_rollback_on_drift_in_one_trace(
    processes: bool,
    tmp_path: Path,
    s3_endpoint: S3Endpoint,
    bucket: str,
    oci_registry: OciRegistryEndpoint,
    gitops: Path,
) -> None:
    with ExitStack() as infrastructure:
        database_url = infrastructure.enter_context(throwaway_database())
        amqp_url = infrastructure.enter_context(rabbitmq_vhost()) if processes else None
        async with launched(
            data_dir=tmp_path / "data",
            database_url=database_url,
            amqp_url=amqp_url,
            s3=s3_endpoint,
            bucket=bucket,
            oci_url=oci_registry.url,
            gitops=gitops,
        ) as platform:
            await run_to_rollback(platform, gitops)
            check_trace(await journey_trace(platform), one_process=not processes)
    # Every service kept its objects in the platform's one bucket, under its own prefix
    # and the team's: none made a bucket of its own for a team or a model.
    assert await _top_prefixes(s3_endpoint, bucket) == {
        f"{service}/teams/default/" for service in ("registry", "scanner", "drift")
    }
