"""Model artifacts read as a stream of chunks, from S3 (`s3://bucket/key`), the MLflow
tracking server's artifact store (`mlflow-artifacts:/<path>`) or the local disk
(`file://` URIs of the embedded platform's artifact store). A directory artifact (an
MLflow model) is listed (`tree`) and read file by file (`tree_chunks`).

Only a version's own artifacts are read (defence in depth: the URI comes from an
event): objects the registry's store keeps for the version's team and model
(`<store>/teams/<team>/models/<model>/...`, in its bucket or its local directory),
objects under an S3 location configured for the team, or artifacts of the tracking
server under one of the team's tracking locations (the registry's rule, so the
builder reads nothing the registry would not have). The check runs before any I/O,
so a refusal says nothing about what lies behind the URI; no `..`, hidden segment or
symlink leads anywhere else.

Memory stays at about one chunk whatever the artifact's size: S3 bodies are read with
`iter_chunks`, files with `read(chunk)` off the event loop. Every failure is a
`BuildFailure` saying what to do: a missing object is not retryable, storage that
does not answer is.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from mlplane_runtime.mlflow_artifacts import ARTIFACTS_SCHEME
from mlplane_runtime.s3 import MISSING_CODES, S3Connection, error_code, s3_client

from mlplane_builder.domain import failures
from mlplane_builder.domain.artifact_tree import TreeFile, too_many_files, tree_files
from mlplane_builder.settings import DEFAULT_REGISTRY_STORE
from mlplane_builder.tracking_artifacts import TrackingArtifacts

CHUNK_SIZE = 1024 * 1024
# A read that still fails ends the build's attempt (storage_unavailable, retried later
# as a whole): one retry more per request than the shared default first.
S3_MAX_RETRIES = 4
DEFAULT_MAX_FILES = 10_000
TRACKING_URI_SETTING = "MLPLANE_BUILDER_MLFLOW_TRACKING_URI"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SEGMENT = re.compile(r"[A-Za-z0-9_=+@,!*'()~ -][A-Za-z0-9._=+@,!*'()~ -]*")


class ArtifactSource:
    """Opens artifacts by URI. Use as `async with ArtifactSource(...) as source:`.

    `s3_endpoint_url` None means AWS's own endpoint; the S3 client is made on the
    first `s3://` artifact. `local_root`: the registry's local-disk object directory
    (`file://` artifacts); `registry_store`: the registry's `s3://<bucket>/` store;
    `team_locations`: team -> `s3://bucket/prefix/` its artifacts may also lie under;
    `tracking_uri` (None: none) the tracking server, `tracking_locations` team ->
    `mlflow-artifacts:/<prefix>/` of it; `max_files`: the most files of a directory.
    Anything else is refused, so an event cannot make the builder read and publish
    arbitrary files.
    """

    def __init__(
        self,
        *,
        local_root: Path,
        registry_store: str = DEFAULT_REGISTRY_STORE,
        team_locations: Mapping[str, Sequence[str]] | None = None,
        s3_endpoint_url: str | None = None,
        s3_region: str = "us-east-1",
        s3_access_key: str | None = None,
        s3_secret_key: str | None = None,
        tracking_uri: str | None = None,
        tracking_token: str | None = None,
        tracking_locations: Mapping[str, Sequence[str]] | None = None,
        max_files: int = DEFAULT_MAX_FILES,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self._local_root = local_root.resolve()
        self._registry_store = registry_store
        self._team_locations = {t: tuple(ls) for t, ls in (team_locations or {}).items()}
        self._s3_connection = S3Connection(
            s3_endpoint_url,
            s3_region,
            s3_access_key,
            s3_secret_key,
            max_retries=S3_MAX_RETRIES,
        )
        self._tracking = (
            None
            if tracking_uri is None
            else TrackingArtifacts(
                tracking_uri, tracking_token, tracking_locations or {}, chunk_size, max_files
            )
        )
        self._max_files = max_files
        self._chunk_size = chunk_size
        self._stack = AsyncExitStack()
        self._s3: Any = None
        self._s3_lock = asyncio.Lock()

    async def __aenter__(self) -> ArtifactSource:
        if self._tracking is not None:
            self._tracking.open()
            self._stack.push_async_callback(self._tracking.close)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._s3 = None
        await self._stack.aclose()

    def chunks(self, uri: str, *, team: str, model: str) -> AsyncIterator[bytes]:
        """The bytes of `team`'s `model` artifact at `uri`, in chunks of at most `chunk_size`.

        Raises (when iterated) `BuildFailure`: artifact_unreadable (not retryable) for
        a URI outside the registry's store for this team and model and outside the
        team's configured locations, before anything is read; artifact_missing,
        storage_unavailable.
        """
        refused = self._refusal(uri, team=team, model=model)
        if refused is not None:
            return _fail(refused)
        if self._tracking is not None and uri.startswith(ARTIFACTS_SCHEME):
            return self._tracking.chunks(uri)
        if urlsplit(uri).scheme == "s3":
            return self._s3_chunks(uri)
        return self._file_chunks(uri)

    async def tree(self, uri: str, *, team: str, model: str, size: int) -> tuple[TreeFile, ...]:
        """The files of `team`'s `model` directory artifact at `uri` (an MLflow model), in
        path order, checked against the `size` the registry verified (`tree_files`).

        Raises `BuildFailure`: artifact_unreadable (not retryable) for a URI the builder
        may not read (as `chunks`, before anything is read) or a directory outside S3
        and the tracking server; artifact_missing, artifact_mismatch, storage_unavailable.
        """
        uri = uri.removesuffix("/")
        refused = self._refusal(uri, team=team, model=model)
        if refused is not None:
            raise refused
        if self._tracking is not None and uri.startswith(ARTIFACTS_SCHEME):
            listed = await self._tracking.listing(uri)
        elif urlsplit(uri).scheme == "s3":
            listed = await self._s3_listing(uri)
        else:
            raise failures.artifact_unreadable(
                uri, "the builder reads directories from S3 and the MLflow tracking server only"
            )
        return tree_files(uri, listed, size=size, max_files=self._max_files)

    def tree_chunks(self, uri: str, file: TreeFile) -> AsyncIterator[bytes]:
        """The bytes of `file` of the directory at `uri`, which `tree` listed (and so
        checked: the file lies below the directory, its path is clean)."""
        uri = uri.removesuffix("/")
        if self._tracking is not None and uri.startswith(ARTIFACTS_SCHEME):
            return self._tracking.chunks(f"{uri}/{file.path}")
        return self._s3_chunks(f"{uri}/{file.path}")

    def _refusal(self, uri: str, *, team: str, model: str) -> failures.BuildFailure | None:
        if self.allows(uri, team=team, model=model):
            return None
        if uri.startswith(ARTIFACTS_SCHEME) and self._tracking is None:
            return failures.artifact_unreadable(
                uri,
                "it is on an MLflow tracking server, and the builder has none configured "
                f"({TRACKING_URI_SETTING}, the same as MLPLANE_REGISTRY_MLFLOW_TRACKING_URI)",
            )
        return failures.artifact_unreadable(
            uri,
            f"it is neither in the registry's store for model {model} of team {team} "
            "nor under a location configured for the team; the builder reads nothing "
            "else (MLPLANE_BUILDER_LOCAL_ARTIFACT_ROOT, "
            "MLPLANE_BUILDER_REGISTRY_ARTIFACT_STORE, "
            "MLPLANE_BUILDER_TEAM_ARTIFACT_LOCATIONS, "
            "MLPLANE_BUILDER_MLFLOW_TRACKING_LOCATIONS)",
        )

    def allows(self, uri: str, *, team: str, model: str) -> bool:
        """Whether `uri` is one of `team`'s `model` artifacts the builder may read. No I/O
        but resolving symlinks of a `file://` path."""
        own = f"teams/{team}/models/{model}/"
        if uri.startswith(ARTIFACTS_SCHEME):
            return self._tracking is not None and self._tracking.allows(uri, team=team)
        try:
            scheme = urlsplit(uri).scheme
        except ValueError:
            return False
        if scheme == "s3":
            prefixes = [self._registry_store + own, *self._team_locations.get(team, ())]
            return _strict_s3(uri) and any(
                uri.startswith(p) and len(uri) > len(p) for p in prefixes
            )
        if scheme == "file":
            path = _strict_file(uri)
            if path is None:
                return False
            own_root = self._local_root / own
            if not path.is_relative_to(own_root):
                return False
            below = path.relative_to(own_root).parts
            # resolve() follows symlinks: a path it changes went through one.
            return all(_SEGMENT.fullmatch(s) for s in below) and path.resolve() == path
        return False

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
            raise _s3_failure(uri, exc) from exc
        except (TimeoutError, BotoCoreError, OSError) as exc:
            raise failures.storage_unavailable(uri, f"{type(exc).__name__}: {exc}") from exc

    async def _s3_listing(self, uri: str) -> list[tuple[str, int]]:
        parts = urlsplit(uri)
        bucket, prefix = parts.netloc, f"{parts.path.lstrip('/')}/"
        listed: list[tuple[str, int]] = []
        try:
            s3 = await self._client()
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            async for page in pages:
                for item in page.get("Contents", []):
                    if len(listed) >= self._max_files:
                        raise too_many_files(uri, self._max_files)
                    listed.append((item["Key"].removeprefix(prefix), int(item["Size"])))
        except ClientError as exc:
            raise _s3_failure(uri, exc) from exc
        except (TimeoutError, BotoCoreError, OSError) as exc:
            raise failures.storage_unavailable(uri, f"{type(exc).__name__}: {exc}") from exc
        return listed

    # -- local disk -----------------------------------------------------------------

    async def _file_chunks(self, uri: str) -> AsyncIterator[bytes]:
        path = _strict_file(uri)
        assert path is not None  # allows() checked it
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


def _strict_s3(uri: str) -> bool:
    """`s3://<bucket>/<key>` with no query, fragment, '%' or dot / empty key segment."""
    parts = urlsplit(uri)
    if parts.query or parts.fragment or "?" in uri or "#" in uri:
        return False
    key = parts.path[1:] if parts.path.startswith("/") else ""
    return (
        uri.startswith("s3://")
        and _BUCKET.fullmatch(parts.netloc) is not None
        and bool(key)
        and all(_SEGMENT.fullmatch(s) for s in key.split("/"))
    )


def _strict_file(uri: str) -> Path | None:
    """The absolute path of a `file://` URI on this host with no '.', '..' or empty
    segment; None for anything else."""
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        return None
    raw = unquote(parts.path)
    segments = raw.split("/")
    if segments[0] != "" or any(s in ("", ".", "..") or "\x00" in s for s in segments[1:]):
        return None
    return Path(raw)


def _s3_failure(uri: str, exc: ClientError) -> failures.BuildFailure:
    code = error_code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in MISSING_CODES:
        return failures.artifact_missing(uri)
    if code in {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
        return failures.artifact_unreadable(
            uri,
            f"object storage refused access ({code}); check MLPLANE_BUILDER_S3_ACCESS_KEY "
            "and the key's read permission on the bucket",
        )
    if isinstance(status, int) and status >= 500:
        return failures.storage_unavailable(uri, f"{status} {code}")
    return failures.artifact_unreadable(uri, f"{code}: {exc}")


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
