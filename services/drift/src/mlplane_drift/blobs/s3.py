"""`BlobStore` on S3 (AWS, MinIO, SeaweedFS) through aioboto3; `s3://bucket/key` URIs.

Profiles and reports go under the service's prefix of the platform's bucket (made at
`start()` when missing); datasets
are read from any bucket the service's credentials reach, streamed to a local file in
chunks, so a large dataset never sits in memory whole.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from mlplane_runtime.errors import Unavailable
from mlplane_runtime.s3 import MISSING_CODES, S3Connection, error_code
from mlplane_runtime.s3_bucket import BucketSpace, OpenBucket

from mlplane_drift.blobs.store import BlobNotFound
from mlplane_drift.domain.errors import DatasetTooLarge, InvalidLocation

CHUNK_BYTES = 1024 * 1024


def split_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of `s3://bucket/key`. Raises `InvalidLocation` for anything else."""
    if not uri.startswith("s3://"):
        raise InvalidLocation(f"{uri!r} is not an s3://bucket/key URI", uri=uri)
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key or key.endswith("/"):
        raise InvalidLocation(f"{uri!r} does not name an object (s3://bucket/key)", uri=uri)
    return bucket, key


class S3BlobStore:
    def __init__(self, connection: S3Connection, space: BucketSpace) -> None:
        self.space = space
        self._bucket = OpenBucket(
            connection, space, not_started="the drift service's object storage is not started"
        )

    async def start(self) -> None:
        """Open the client and make sure the bucket exists. Raises `Unavailable`."""
        await self._bucket.start()

    async def close(self) -> None:
        await self._bucket.close()

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        client = self._bucket.client()
        try:
            await client.put_object(
                Bucket=self.space.bucket,
                Key=self.space.key(key),
                Body=data,
                ContentType=content_type,
            )
        except (BotoCoreError, ClientError) as exc:
            raise Unavailable(f"storing {key} failed: {exc}") from exc
        return self.space.uri(key)

    async def get(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        if self.space.key_of(uri) is None:
            raise BlobNotFound(f"{uri} is not in the drift service's storage", uri=uri)
        client = self._bucket.client()
        try:
            response = await client.get_object(Bucket=bucket, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
        except ClientError as exc:
            if error_code(exc) in MISSING_CODES:
                raise BlobNotFound(f"{uri} does not exist", uri=uri) from None
            raise Unavailable(f"reading {uri} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise Unavailable(f"reading {uri} failed: {exc}") from exc
        return data

    async def download(self, uri: str, target: Path, max_bytes: int) -> int:
        bucket, key = split_s3_uri(uri)
        client = self._bucket.client()
        try:
            return await self._stream(client, bucket, key, uri, target, max_bytes)
        except ClientError as exc:
            await asyncio.to_thread(target.unlink, missing_ok=True)
            if error_code(exc) in MISSING_CODES:
                raise BlobNotFound(f"{uri} does not exist", uri=uri) from None
            if error_code(exc) in {"AccessDenied", "403", "AllAccessDisabled"}:
                raise BlobNotFound(f"{uri} cannot be read by the drift service", uri=uri) from None
            raise Unavailable(f"reading {uri} failed: {exc}") from exc
        except BotoCoreError as exc:
            await asyncio.to_thread(target.unlink, missing_ok=True)
            raise Unavailable(f"reading {uri} failed: {exc}") from exc
        except BaseException:
            await asyncio.to_thread(target.unlink, missing_ok=True)
            raise

    async def _stream(
        self, client: Any, bucket: str, key: str, uri: str, target: Path, max_bytes: int
    ) -> int:
        response = await client.get_object(Bucket=bucket, Key=key)
        declared = int(response.get("ContentLength") or 0)
        too_large = DatasetTooLarge(
            f"{uri} holds more than the {max_bytes} bytes allowed", uri=uri, max_bytes=max_bytes
        )
        if declared > max_bytes:
            raise too_large
        written = 0
        file = await asyncio.to_thread(target.open, "wb")
        try:
            body = response["Body"]
            async with body:  # releases the connection, also when the size runs over
                async for chunk in body.iter_chunks(CHUNK_BYTES):
                    written += len(chunk)
                    if written > max_bytes:
                        raise too_large
                    await asyncio.to_thread(file.write, chunk)
        finally:
            await asyncio.to_thread(file.close)
        return written
