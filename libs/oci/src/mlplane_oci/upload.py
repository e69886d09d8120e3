"""Blob upload from a stream: POST, one streamed PATCH or a PATCH per chunk, PUT `?digest=`.

Streamed (`chunk_size=None`): the whole stream goes in one PATCH with chunked
transfer encoding, as Docker and skopeo push: no request per chunk, no chunk held
back, and the registry never waits between requests. A failure mid-stream cannot
be resumed from this side (the stream's earlier bytes are gone): `UploadInterrupted`
tells the caller to start again.

Chunked: memory stays at a few chunks whatever the blob's size (one PATCH in
flight while the next chunk is gathered). A PATCH that fails is sent again after asking
the registry how much it has (GET on the upload URL, `Range: 0-<last byte>`), which
distribution, Harbor and most registries answer.

Either way the sha256 and the size are computed while the bytes pass, unless the
caller's producer hashes them itself (`digest`); the registry checks the digest
on the PUT either way. When the registry cannot say, or
says something the buffered chunk cannot continue from, the upload cannot be
resumed from this side (the stream's earlier bytes are gone) and `UploadInterrupted`
tells the caller, who owns the stream, to start over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import AsyncGenerator, AsyncIterable, Callable
from dataclasses import dataclass

from mlplane_oci.auth import pull_scope, push_scope
from mlplane_oci.errors import (
    DigestMismatch,
    OciError,
    RegistryCallFailed,
    RegistryUnavailable,
    UploadInterrupted,
    describe_call,
)
from mlplane_oci.session import RegistrySession, with_query

_RANGE = re.compile(r"^(?:bytes=)?0-([0-9]+)$")
OCTET_STREAM = "application/octet-stream"
HASH_IN_THREAD = 1 * 2**20


@dataclass(frozen=True)
class PushedBlob:
    digest: str
    size: int


async def start_upload(session: RegistrySession, repository: str) -> str:
    """POST a new upload session; the URL to send its bytes to."""
    url = session.url(f"/v2/{repository}/blobs/uploads/")
    response = await session.send(
        "POST", url, kind="blob-upload", scopes=[push_scope(repository)], idempotent=False
    )
    if response.status_code != 202:
        raise RegistryCallFailed.from_response("POST", url, response.status_code, response.content)
    return session.resolve(response)


async def finish_upload(
    session: RegistrySession, repository: str, location: str, digest: str, body: bytes = b""
) -> None:
    """PUT `?digest=` (with the last bytes, if any); checks the digest the registry stored."""
    url = with_query(location, "digest", digest)
    response = await session.send(
        "PUT",
        url,
        kind="blob-upload",
        scopes=[push_scope(repository)],
        headers={"Content-Type": OCTET_STREAM, "Content-Length": str(len(body))},
        content=body,
        idempotent=False,
    )
    session.stats.bytes_uploaded += len(body)
    if response.status_code != 201:
        raise RegistryCallFailed.from_response("PUT", url, response.status_code, response.content)
    stored = response.headers.get("docker-content-digest")
    if stored and stored != digest:
        call = describe_call("PUT", url)
        raise DigestMismatch(f"{call}: registry stored {stored}, sent {digest}", call=call)
    session.stats.blobs_uploaded += 1


class ChunkedUpload:
    """One upload session being fed chunks in order."""

    def __init__(self, session: RegistrySession, repository: str, location: str) -> None:
        self._session = session
        self._repository = repository
        self.location = location
        self.offset = 0

    async def send_chunk(self, chunk: bytes) -> None:
        """PATCH `chunk` at the current offset, re-sending it after failures the
        registry's upload status shows it did not take. Raises `UploadInterrupted`."""
        failures = 0
        while True:
            try:
                self.location = await self._patch(chunk)
            except RegistryUnavailable as error:
                failures += 1
                if failures >= self._session.retry.attempts:
                    raise UploadInterrupted(
                        f"{error.detail}; gave up on this upload after {failures} tries",
                        call=error.call,
                        http_status=error.http_status,
                        errors=error.errors,
                    ) from error
                await asyncio.sleep(self._session.retry.backoff_s(failures))
                self._session.stats.retries += 1
                received = await self._received(error)
                if received == self.offset + len(chunk):
                    break  # the chunk landed; only its answer was lost
                if received != self.offset:
                    raise UploadInterrupted(
                        f"{error.detail}; the registry holds {received} bytes of this upload, "
                        f"{self.offset} were sent before the failed chunk: restart the upload",
                        call=error.call,
                    ) from error
                continue
            break
        self.offset += len(chunk)

    async def _patch(self, chunk: bytes) -> str:
        end = self.offset + len(chunk) - 1
        response = await self._session.send(
            "PATCH",
            self.location,
            kind="blob-upload",
            scopes=[push_scope(self._repository)],
            headers={
                "Content-Type": OCTET_STREAM,
                "Content-Range": f"{self.offset}-{end}",
                "Content-Length": str(len(chunk)),
            },
            content=chunk,
            idempotent=False,  # retried here, from the registry's own account
        )
        self._session.stats.bytes_uploaded += len(chunk)
        if response.status_code != 202:
            raise RegistryCallFailed.from_response(
                "PATCH", self.location, response.status_code, response.content
            )
        return self._session.resolve(response)

    async def _received(self, cause: OciError) -> int:
        """How many bytes the registry holds (GET upload status); moves `location`
        to the fresh one the registry returns. Raises `UploadInterrupted` when the
        registry cannot say."""
        try:
            response = await self._session.send(
                "GET",
                self.location,
                kind="blob-upload",
                scopes=[push_scope(self._repository)],
            )
        except RegistryUnavailable as error:
            raise UploadInterrupted(
                f"{cause.detail}; upload status unavailable too ({error.detail}): "
                "restart the upload",
                call=cause.call,
            ) from error
        match = _RANGE.match(response.headers.get("range", ""))
        if response.status_code not in (200, 204) or match is None:
            call = describe_call("GET", self.location)
            raise UploadInterrupted(
                f"{cause.detail}; the registry cannot say how much of the upload it holds "
                f"({call}: {response.status_code}): restart the upload",
                call=cause.call,
            ) from cause
        if response.headers.get("location"):
            self.location = self._session.resolve(response)
        last = int(match.group(1))
        # Distribution answers `0-0` for both 0 and 1 byte received; chunks are larger
        # than one byte, so at an offset of 0 it means nothing has landed.
        return 0 if last == 0 and self.offset == 0 else last + 1


class _OnePatchInFlight:
    """Sends chunks in order with one PATCH in flight, so the next chunk is gathered
    (read, compressed, hashed by the producer) while the previous one travels."""

    def __init__(self, upload: ChunkedUpload) -> None:
        self._upload = upload
        self._in_flight: asyncio.Task[None] | None = None

    async def send(self, chunk: bytes) -> None:
        await self.drain()
        self._in_flight = asyncio.create_task(self._upload.send_chunk(chunk))

    async def drain(self) -> None:
        """Wait for the PATCH in flight; raises its error."""
        if self._in_flight is not None:
            task, self._in_flight = self._in_flight, None
            await task

    async def abandon(self) -> None:
        if self._in_flight is not None:
            self._in_flight.cancel()
            with contextlib.suppress(BaseException):
                await self._in_flight
            self._in_flight = None


async def _hash(hasher: hashlib._Hash, piece: bytes) -> None:
    # hashlib releases the GIL on large inputs: hashing in a thread keeps the event
    # loop writing the PATCH in flight meanwhile.
    if len(piece) >= HASH_IN_THREAD:
        await asyncio.to_thread(hasher.update, piece)
    else:
        hasher.update(piece)


Digest = Callable[[], str]
"""The digest of a stream, known once it has ended: its producer hashed its bytes."""


async def push_stream(
    session: RegistrySession,
    repository: str,
    chunks: AsyncIterable[bytes],
    chunk_size: int | None,
    digest: Digest | None = None,
) -> PushedBlob:
    """Upload everything `chunks` yields as one blob: in one streamed PATCH when
    `chunk_size` is None, else in PATCHes of `chunk_size` bytes. `digest`: the
    stream's own (not hashed again here)."""
    if chunk_size is None:
        return await _push_streamed(session, repository, chunks, digest)
    if chunk_size < 2:
        raise ValueError("chunk_size must be at least 2 bytes")
    upload = ChunkedUpload(session, repository, await start_upload(session, repository))
    sender = _OnePatchInFlight(upload)
    hasher = hashlib.sha256() if digest is None else None
    pending: list[bytes] = []
    pending_size = 0
    try:
        async for piece in chunks:
            if not piece:
                continue
            piece = bytes(piece)  # a bytearray or memoryview could change under us
            if hasher is not None:
                await _hash(hasher, piece)
            pending.append(piece)
            pending_size += len(piece)
            if pending_size < chunk_size:
                continue
            if pending_size == chunk_size:
                # The common case when the producer cuts chunks of this size: no copy.
                await sender.send(b"".join(pending) if len(pending) > 1 else pending[0])
                pending, pending_size = [], 0
                continue
            joined = memoryview(b"".join(pending))
            start = 0
            while len(joined) - start >= chunk_size:
                await sender.send(bytes(joined[start : start + chunk_size]))
                start += chunk_size
            rest = bytes(joined[start:])
            pending, pending_size = ([rest] if rest else []), len(rest)
        if pending_size:
            await sender.send(b"".join(pending))
        await sender.drain()
    except BaseException:
        await sender.abandon()
        raise
    final = digest() if digest is not None else "sha256:" + _hexdigest(hasher)
    return await _complete(session, repository, upload.location, final, upload.offset)


async def _push_streamed(
    session: RegistrySession,
    repository: str,
    chunks: AsyncIterable[bytes],
    digest: Digest | None,
) -> PushedBlob:
    location = await start_upload(session, repository)
    hasher = hashlib.sha256() if digest is None else None
    sent = 0

    async def body() -> AsyncGenerator[bytes, None]:
        nonlocal sent
        async for piece in chunks:
            if not piece:
                continue
            if hasher is not None:
                await _hash(hasher, piece)
            sent += len(piece)
            session.stats.bytes_uploaded += len(piece)
            # Sent before the next piece is asked for: a producer reusing its
            # buffer cannot change these bytes under us.
            yield piece

    stream = body()
    try:
        response = await session.send_streamed(
            "PATCH",
            location,
            kind="blob-upload",
            scopes=[push_scope(repository)],
            headers={"Content-Type": OCTET_STREAM},
            body=stream,
        )
    except RegistryUnavailable as error:
        raise UploadInterrupted(
            f"{error.detail}; {sent} bytes of the stream were sent: restart the upload",
            call=error.call,
            http_status=error.http_status,
            errors=error.errors,
        ) from error
    else:
        if response.status_code != 202:
            raise RegistryCallFailed.from_response(
                "PATCH", location, response.status_code, response.content
            )
        location = session.resolve(response)
    finally:
        await stream.aclose()
    final = digest() if digest is not None else "sha256:" + _hexdigest(hasher)
    return await _complete(session, repository, location, final, sent)


def _hexdigest(hasher: hashlib._Hash | None) -> str:
    assert hasher is not None  # made whenever no digest was given
    return hasher.hexdigest()


async def _complete(
    session: RegistrySession, repository: str, location: str, digest: str, size: int
) -> PushedBlob:
    """PUT `?digest=`; a lost answer is checked against the blob itself."""
    try:
        await finish_upload(session, repository, location, digest)
    except RegistryUnavailable as error:
        # The PUT may have completed with only its answer lost: the blob tells.
        if await blob_size(session, repository, digest) == size:
            session.stats.blobs_uploaded += 1
            return PushedBlob(digest=digest, size=size)
        raise UploadInterrupted(
            f"{error.detail}; the upload was not completed: restart it",
            call=error.call,
        ) from error
    return PushedBlob(digest=digest, size=size)


async def blob_size(session: RegistrySession, repository: str, digest: str) -> int | None:
    """HEAD a blob: its size, or None when the repository does not have it."""
    url = session.url(f"/v2/{repository}/blobs/{digest}")
    response = await session.send("HEAD", url, kind="blob", scopes=[pull_scope(repository)])
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise RegistryCallFailed.from_response("HEAD", url, response.status_code, b"")
    length = response.headers.get("content-length")
    return int(length) if length is not None and length.isdigit() else None
