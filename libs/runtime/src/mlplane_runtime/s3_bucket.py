"""One S3 client kept open on one bucket for a service's own objects, the bucket made
if missing: the lifecycle the scanner's reports and the drift service's blobs share."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mlplane_runtime.errors import Unavailable
from mlplane_runtime.s3 import S3Connection, ensure_bucket, s3_client


class OpenBucket:
    """`start()` it in the service's lifespan, use `client()`, `close()` it after.

    `label` names the storage in errors ("report storage at <endpoint> failed: ...");
    `not_started` is the error's text when it is used before `start()`.
    """

    def __init__(
        self, connection: S3Connection, bucket: str, *, label: str, not_started: str
    ) -> None:
        self.bucket = bucket
        self.connection = connection
        self._label = label
        self._not_started = not_started
        self._stack: AsyncExitStack | None = None
        self._client: Any = None

    async def start(self) -> None:
        """Open the client and make sure the bucket exists. Raises `Unavailable`."""
        if self._stack is not None:
            return
        stack = AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(s3_client(self.connection))
            await ensure_bucket(self._client, self.bucket)
        except (BotoCoreError, ClientError) as exc:
            await stack.aclose()
            self._client = None
            where = self.connection.endpoint_url
            raise Unavailable(f"{self._label} at {where} failed: {exc}") from exc
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

    def client(self) -> Any:
        """The open client; raises `Unavailable` before `start()` or after `close()`."""
        if self._client is None:
            raise Unavailable(self._not_started)
        return self._client
