"""`ReportStore` on S3 (AWS, MinIO, SeaweedFS) through aioboto3; `s3://bucket/key` URIs."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from mlplane_runtime.errors import Unavailable
from mlplane_runtime.s3 import MISSING_CODES, S3Connection, error_code
from mlplane_runtime.s3_bucket import BucketSpace, OpenBucket

from mlplane_scanner.reports.store import ReportNotFound


class S3ReportStore:
    """Reports under the scanner's prefix of its bucket, made at `start()` when missing."""

    def __init__(
        self, endpoint_url: str, space: BucketSpace, region: str, access_key: str, secret_key: str
    ) -> None:
        self.endpoint_url = endpoint_url
        self.space = space
        self._bucket = OpenBucket(
            S3Connection(endpoint_url, region, access_key, secret_key),
            space,
            not_started="the scanner's report storage is not started",
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
            raise Unavailable(f"storing report {key} failed: {exc}") from exc
        return self.space.uri(key)

    async def get(self, uri: str) -> bytes:
        key = self.space.key_of(uri)
        if key is None:
            raise ReportNotFound(f"report {uri} is not in the scanner's storage", uri=uri)
        client = self._bucket.client()
        try:
            response = await client.get_object(Bucket=self.space.bucket, Key=self.space.key(key))
            async with response["Body"] as body:
                data: bytes = await body.read()
        except ClientError as exc:
            if error_code(exc) in MISSING_CODES:
                raise ReportNotFound(f"report {uri} does not exist", uri=uri) from None
            raise Unavailable(f"reading report {uri} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise Unavailable(f"reading report {uri} failed: {exc}") from exc
        return data
