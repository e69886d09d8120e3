"""S3 clients (AWS, MinIO, SeaweedFS) configured the same way in every service.

Each service keeps its own settings (`MLPLANE_<SERVICE>_S3_*`) and turns them into an
`S3Connection`; `s3_client` opens an aioboto3 client for it. What every client shares:
path-style addressing (S3-compatible servers rarely serve virtual-host buckets),
SigV4, standard retries, short connect and bounded read timeouts, and checksums only
where an operation requires them (servers differ in which additional checksums they
support; callers that need integrity hash the bytes themselves).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})
"""Error codes S3 and S3-compatible servers answer for a missing object or bucket."""


@dataclass(frozen=True)
class S3Connection:
    """Where an S3 API answers and how to talk to it.

    `endpoint_url` None means AWS's own endpoint for `region`. Access and secret key
    None leave credentials to botocore's default chain (environment, profile, instance
    role). The secret is kept out of `repr`, so a logged connection shows no credential.
    """

    endpoint_url: str | None
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    max_retries: int = 3
    """Retries of a failed request after its first try (botocore's standard retry mode,
    whose `retries.max_attempts` counts retries: 3 means up to 4 tries in all)."""
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 60.0

    def client_config(self) -> Config:
        """The botocore configuration every mlplane S3 client uses."""
        return Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": self.max_retries, "mode": "standard"},
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )


@asynccontextmanager
async def s3_client(connection: S3Connection) -> AsyncIterator[Any]:
    """An aioboto3 S3 client for `connection`, closed when the block ends.

    Connects lazily: opening the client makes no request, so an unreachable endpoint
    shows up as `botocore.exceptions.BotoCoreError` (EndpointConnectionError,
    ConnectTimeoutError, ...) on the first call, after the configured retries.
    """
    # Imported here: aioboto3 and aiobotocore are ~14 MB resident, which a process
    # that never opens an S3 client (the builder reading `file://` artifacts) saves.
    import aioboto3

    session = aioboto3.Session(
        aws_access_key_id=connection.access_key,
        aws_secret_access_key=connection.secret_key,
        region_name=connection.region,
    )
    async with session.client(
        "s3", endpoint_url=connection.endpoint_url, config=connection.client_config()
    ) as client:
        yield client


def error_code(error: ClientError) -> str:
    """The S3 error code of `error` ("NoSuchKey", "404", ...); "" when it has none."""
    return str(error.response.get("Error", {}).get("Code", ""))


async def ensure_bucket(client: Any, bucket: str) -> None:
    """Create `bucket` unless it exists; a bucket another replica creates meanwhile is fine.

    Raises what the client raises otherwise (`ClientError`, `BotoCoreError`).
    """
    try:
        await client.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        if error_code(exc) not in MISSING_CODES:
            raise
    try:
        await client.create_bucket(Bucket=bucket)
    except ClientError as exc:
        # Another instance created it between our check and our create.
        if error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise
