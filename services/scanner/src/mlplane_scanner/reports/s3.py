"""`ReportStore` on S3 (AWS, MinIO, SeaweedFS) through aioboto3; `s3://bucket/key` URIs."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from mlplane_runtime.errors import Unavailable
from mlplane_runtime.s3 import MISSING_CODES, S3Connection, ensure_bucket, error_code, s3_client

from mlplane_scanner.reports.store import ReportNotFound


class S3ReportStore:
    """Reports in one bucket, created at `start()` when missing."""

    def __init__(
        self, endpoint_url: str, bucket: str, region: str, access_key: str, secret_key: str
    ) -> None:
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self._connection = S3Connection(endpoint_url, region, access_key, secret_key)
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    async def start(self) -> None:
        """Open the client and make sure the bucket exists. Raises `Unavailable`."""
        if self._stack is not None:
            return
        stack = AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(s3_client(self._connection))
            await ensure_bucket(self._client, self.bucket)
        except (BotoCoreError, ClientError) as exc:
            await stack.aclose()
            self._client = None
            raise Unavailable(f"report storage at {self.endpoint_url} failed: {exc}") from exc
        except BaseException:
            await stack.aclose()
            self._client = None
            raise
        self._stack = stack

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        self._client = None
        if stack is not None:
            await stack.aclose()

    def _started(self) -> Any:
        if self._client is None:
            raise Unavailable("the scanner's report storage is not started")
        return self._client

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        client = self._started()
        try:
            await client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
            )
        except (BotoCoreError, ClientError) as exc:
            raise Unavailable(f"storing report {key} failed: {exc}") from exc
        return f"s3://{self.bucket}/{key}"

    async def get(self, uri: str) -> bytes:
        prefix = f"s3://{self.bucket}/"
        if not uri.startswith(prefix):
            raise ReportNotFound(f"report {uri} is not in the scanner's storage", uri=uri)
        client = self._started()
        try:
            response = await client.get_object(Bucket=self.bucket, Key=uri[len(prefix) :])
            async with response["Body"] as body:
                data: bytes = await body.read()
        except ClientError as exc:
            if error_code(exc) in MISSING_CODES:
                raise ReportNotFound(f"report {uri} does not exist", uri=uri) from None
            raise Unavailable(f"reading report {uri} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise Unavailable(f"reading report {uri} failed: {exc}") from exc
        return data
