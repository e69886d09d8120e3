"""Model artifacts read as a stream of chunks, from S3 (`s3://bucket/key`) or the local
disk (`file://` URIs of the embedded platform's artifact store).

Memory stays at about one chunk whatever the artifact's size: S3 bodies are read with
`iter_chunks`, files with `read(chunk)` off the event loop. Every failure is a
`BuildFailure` saying what to do: a missing object is not retryable, storage that
does not answer is.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from mlplane_runtime.s3 import MISSING_CODES, S3Connection, error_code, s3_client

from mlplane_builder.domain import failures

CHUNK_SIZE = 1024 * 1024
# A read that still fails ends the build's attempt (storage_unavailable, retried later
# as a whole): one retry more per request than the shared default first.
S3_MAX_RETRIES = 4


class ArtifactSource:
    """Opens artifacts by URI. Use as `async with ArtifactSource(...) as source:`.

    `s3_endpoint_url` None means AWS's own endpoint; the S3 client is made on the
    first `s3://` artifact. `local_root`: the directory `file://` artifacts must be
    under (anything else is refused, so an event cannot make the builder read and
    publish arbitrary files).
    """

    def __init__(
        self,
        *,
        local_root: Path,
        s3_endpoint_url: str | None = None,
        s3_region: str = "us-east-1",
        s3_access_key: str | None = None,
        s3_secret_key: str | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self._local_root = local_root.resolve()
        self._s3_connection = S3Connection(
            s3_endpoint_url,
            s3_region,
            s3_access_key,
            s3_secret_key,
            max_retries=S3_MAX_RETRIES,
        )
        self._chunk_size = chunk_size
        self._stack = AsyncExitStack()
        self._s3: Any = None
        self._s3_lock = asyncio.Lock()

    async def __aenter__(self) -> ArtifactSource:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._s3 = None
        await self._stack.aclose()

    def chunks(self, uri: str) -> AsyncIterator[bytes]:
        """The artifact's bytes in chunks of at most `chunk_size`.

        Raises (when iterated) `BuildFailure`: artifact_missing, artifact_unreadable
        (unsupported scheme, a file outside the allowed root), storage_unavailable.
        """
        scheme = urlsplit(uri).scheme
        if scheme == "s3":
            return self._s3_chunks(uri)
        if scheme == "file":
            return self._file_chunks(uri)
        return _fail(
            failures.artifact_unreadable(uri, f"scheme {scheme!r} is not s3:// or file://")
        )

    # -- S3 -------------------------------------------------------------------------

    async def _client(self) -> Any:
        async with self._s3_lock:
            if self._s3 is None:
                self._s3 = await self._stack.enter_async_context(s3_client(self._s3_connection))
            return self._s3

    async def _s3_chunks(self, uri: str) -> AsyncIterator[bytes]:
        parts = urlsplit(uri)
        bucket, key = parts.netloc, parts.path.lstrip("/")
        if not bucket or not key:
            raise failures.artifact_unreadable(uri, "an s3:// URI needs a bucket and a key")
        try:
            s3 = await self._client()
            response = await s3.get_object(Bucket=bucket, Key=key)
            body = response["Body"]
            async with body:  # releases the connection, even when the build stops early
                async for chunk in body.iter_chunks(self._chunk_size):
                    yield chunk
        except ClientError as exc:
            code = error_code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in MISSING_CODES:
                raise failures.artifact_missing(uri) from exc
            if code in {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
                raise failures.artifact_unreadable(
                    uri,
                    f"object storage refused access ({code}); check MLPLANE_BUILDER_S3_ACCESS_KEY "
                    "and the key's read permission on the bucket",
                ) from exc
            if isinstance(status, int) and status >= 500:
                raise failures.storage_unavailable(uri, f"{status} {code}") from exc
            raise failures.artifact_unreadable(uri, f"{code}: {exc}") from exc
        except (TimeoutError, BotoCoreError, OSError) as exc:
            raise failures.storage_unavailable(uri, f"{type(exc).__name__}: {exc}") from exc

    # -- local disk -----------------------------------------------------------------

    def local_path(self, uri: str) -> Path:
        """The file a `file://` URI names. Raises BuildFailure when outside the root."""
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise failures.artifact_unreadable(uri, "a file:// URI must be on this host")
        path = Path(unquote(parts.path)).resolve()
        if not path.is_relative_to(self._local_root):
            raise failures.artifact_unreadable(
                uri,
                f"it is outside {self._local_root}, the directory local artifacts are read "
                "from (MLPLANE_BUILDER_LOCAL_ARTIFACT_ROOT)",
            )
        return path

    async def _file_chunks(self, uri: str) -> AsyncIterator[bytes]:
        path = self.local_path(uri)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError as exc:
            raise failures.artifact_missing(uri) from exc
        except OSError as exc:
            raise failures.artifact_unreadable(uri, exc.strerror or str(exc)) from exc
        try:
            while True:
                chunk = await asyncio.to_thread(handle.read, self._chunk_size)
                if not chunk:
                    return
                yield chunk
        except OSError as exc:
            raise failures.artifact_unreadable(uri, exc.strerror or str(exc)) from exc
        finally:
            await asyncio.to_thread(handle.close)


async def _fail(failure: failures.BuildFailure) -> AsyncIterator[bytes]:
    raise failure
    yield b""  # pragma: no cover (makes this an async generator)


async def verified(
    uri: str, chunks: AsyncIterator[bytes], *, size: int, sha256: str
) -> AsyncIterator[bytes]:
    """`chunks` passed through, checked against the size and sha256 the registry verified.

    Raises `BuildFailure` (artifact_mismatch) as soon as the size is exceeded, or at the
    end when the size or hash differs, so a layer is never finished from the wrong bytes.
    """
    digest = hashlib.sha256()
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > size:
            raise failures.artifact_mismatch(
                uri, expected=f"{size} bytes", actual=f"more than {size} bytes", what="size"
            )
        # Off the loop: hashlib releases the GIL on large buffers, so this runs beside
        # the layer's compression threads instead of stalling the event loop.
        await asyncio.to_thread(digest.update, chunk)
        yield chunk
    if seen != size:
        raise failures.artifact_mismatch(
            uri, expected=f"{size} bytes", actual=f"{seen} bytes", what="size"
        )
    if digest.hexdigest() != sha256:
        raise failures.artifact_mismatch(
            uri, expected=sha256, actual=digest.hexdigest(), what="sha256"
        )
