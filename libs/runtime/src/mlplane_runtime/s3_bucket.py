"""Where a service keeps its own objects, and the client kept open on them.

The platform uses a fixed set of buckets, named in settings and never derived from a
team or a model: by default one bucket (`mlplane`) that every service shares, each under
its own prefix (`registry/`, `scanner/`, `drift/`), each team's objects under
`teams/<team>/` inside that. A bucket is made once, when the service starts, if it is
not there; a bucket that cannot be checked or made stops the start with an error naming
the setting that names it. (S3 servers such as SeaweedFS give each bucket storage
volumes of its own: buckets made per name on demand ran a shared server out of them.)
"""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mlplane_runtime.errors import Unavailable
from mlplane_runtime.s3 import S3Connection, ensure_bucket, error_code, s3_client

BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
"""An S3 bucket name (lowercase letters, digits, '.', '-'; 3 to 63 characters)."""
PREFIX_PATTERN = r"^([a-z0-9][a-z0-9._-]*/)*$"
"""A key prefix: '' (the bucket's root) or segments each ending in '/' (`registry/`)."""
DEFAULT_BUCKET = "mlplane"
_PREFIX = re.compile(PREFIX_PATTERN)


@dataclass(frozen=True, slots=True)
class BucketSpace:
    """A service's own part of a bucket: the keys under `prefix` in `bucket`.

    `setting` names the setting the bucket comes from (`MLPLANE_SCANNER_S3_BUCKET`), so
    an error about the bucket says what to change.
    """

    bucket: str
    prefix: str = ""
    setting: str = "the S3 bucket"

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(f"S3 key prefix {self.prefix!r} must match {PREFIX_PATTERN}")

    def key(self, key: str) -> str:
        """The object key of the service's `key`."""
        return self.prefix + key

    def uri(self, key: str) -> str:
        """`s3://<bucket>/<prefix><key>`."""
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def key_of(self, uri: str) -> str | None:
        """The service's key of `uri`; None when `uri` lies outside this space."""
        start = self.uri("")
        if not uri.startswith(start) or len(uri) == len(start):
            return None
        return uri[len(start) :]


async def open_bucket(client: Any, space: BucketSpace, endpoint_url: str | None) -> None:
    """Make sure `space`'s bucket exists, making it if not.

    Raises `Unavailable` naming the bucket's setting when storage does not answer, or
    when the bucket is missing and cannot be made (or cannot be checked).
    """
    where = endpoint_url or "AWS S3"
    try:
        await ensure_bucket(client, space.bucket)
    except BotoCoreError as exc:
        raise Unavailable(
            f"object storage at {where} did not answer while checking the bucket "
            f"{space.bucket!r} ({space.setting}): {exc}"
        ) from exc
    except ClientError as exc:
        raise Unavailable(
            f"the bucket {space.bucket!r} ({space.setting}) could not be checked or made at "
            f"{where} ({error_code(exc) or 'error'}): create it, or set {space.setting} to a "
            "bucket these credentials may write"
        ) from exc


class OpenBucket:
    """One S3 client kept open on a service's `BucketSpace`, the bucket made if missing.

    `start()` it in the service's lifespan, use `client()`, `close()` it after.
    `not_started` is the error's text when it is used before `start()`.
    """

    def __init__(self, connection: S3Connection, space: BucketSpace, *, not_started: str) -> None:
        self.space = space
        self.connection = connection
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
            await open_bucket(self._client, self.space, self.connection.endpoint_url)
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
