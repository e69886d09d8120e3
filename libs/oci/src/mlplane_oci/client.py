"""`OciClient`: blobs and manifests over the OCI distribution API, for one registry.

    async with OciClient("https://harbor.example.com", username=..., password=...) as oci:
        config_digest = await oci.push_blob("team/model", config_bytes)
        layer = await oci.push_blob_stream("team/model", layer_chunks)
        digest = await oci.put_manifest("team/model", "1.4.0", manifest, OCI_MANIFEST)

Repositories are paths inside the registry (`team/model`), without the host.
Authentication (Bearer tokens or Basic), retries and request counting are the
session's (`session.py`); chunked uploads are `upload.py`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from types import TracebackType

import httpx

from mlplane_oci import media_types
from mlplane_oci.auth import pull_scope, push_scope
from mlplane_oci.digest import digest_of, hasher_for, is_digest, sha256_digest
from mlplane_oci.errors import (
    BlobNotFound,
    DigestMismatch,
    ManifestNotFound,
    OciError,
    RegistryCallFailed,
    RegistryUnavailable,
    describe_call,
)
from mlplane_oci.manifest import Manifest, media_type_of
from mlplane_oci.reference import validate_repository
from mlplane_oci.retry import RetryPolicy
from mlplane_oci.session import RegistrySession, with_query
from mlplane_oci.stats import RequestStats
from mlplane_oci.upload import (
    Digest,
    PushedBlob,
    blob_size,
    finish_upload,
    push_stream,
    start_upload,
)

DEFAULT_CHUNK_SIZE = 16 * 2**20
DEFAULT_TIMEOUT_S = 60.0


class OciClient:
    """A client of one OCI registry (`base_url` like `https://harbor.example.com`).

    Every method raises the errors of `mlplane_oci.errors`:
    `RegistryUnavailable` when the registry did not answer within the retry policy,
    `RegistryAuthFailed`, `BlobNotFound`/`ManifestNotFound` on reads of missing
    content, `DigestMismatch`, and `RegistryCallFailed` for any other refusal.
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        retry: RetryPolicy = RetryPolicy(),
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._session = RegistrySession(
            base_url,
            username=username,
            password=password,
            retry=retry,
            timeout_s=timeout_s,
            transport=transport,
        )

    @property
    def stats(self) -> RequestStats:
        """Requests sent per (method, kind) and bytes uploaded, since creation or reset."""
        return self._session.stats

    @property
    def base_url(self) -> str:
        return self._session.base_url

    async def __aenter__(self) -> OciClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._session.aclose()

    # Blobs

    async def blob_size(self, repository: str, digest: str) -> int | None:
        """The blob's size in bytes, or None when the repository does not have it."""
        hasher_for(digest)  # refuses a malformed digest before any request
        return await blob_size(self._session, validate_repository(repository), digest)

    async def get_blob(self, repository: str, digest: str) -> bytes:
        """A whole blob in memory (configs and other small blobs), its digest checked.

        Raises `BlobNotFound` and `DigestMismatch`.
        """
        hasher = hasher_for(digest)
        url = self._blob_url(repository, digest)
        response = await self._session.send(
            "GET", url, kind="blob", scopes=[pull_scope(repository)]
        )
        _raise_for_read(response, "GET", url, BlobNotFound)
        hasher.update(response.content)
        _check_digest("GET", url, digest, hasher)
        return response.content

    async def stream_blob(self, repository: str, digest: str) -> AsyncIterator[bytes]:
        """The blob's bytes as they arrive, for copying big blobs without holding them.

        The digest is checked at the end: the last iteration raises `DigestMismatch`
        if the bytes were not the blob's, so a consumer must not commit what it
        copied before the iteration finishes. Raises `BlobNotFound` before the first
        bytes. The response is released when the generator is closed.
        """
        hasher = hasher_for(digest)
        url = self._blob_url(repository, digest)
        response = await self._session.send(
            "GET", url, kind="blob", scopes=[pull_scope(repository)], stream=True
        )
        try:
            if response.status_code != 200:
                await response.aread()
                _raise_for_read(response, "GET", url, BlobNotFound)
            try:
                async for chunk in response.aiter_bytes():
                    hasher.update(chunk)
                    yield chunk
            except httpx.TransportError as exc:
                call = describe_call("GET", url)
                raise RegistryUnavailable(
                    f"{call}: connection lost while reading ({type(exc).__name__})", call=call
                ) from exc
            _check_digest("GET", url, digest, hasher)
        finally:
            await response.aclose()

    async def push_blob(self, repository: str, data: bytes) -> str:
        """Upload `data` as one blob (POST, then PUT with the bytes); its digest.

        Skipped when the registry already has the blob. A failed upload is started
        again from the POST, within the retry policy.
        """
        validate_repository(repository)
        digest = sha256_digest(data)
        if await self.blob_size(repository, digest) is not None:
            self.stats.blobs_already_present += 1
            return digest
        policy = self._session.retry
        for failures in range(1, policy.attempts + 1):
            try:
                location = await start_upload(self._session, repository)
                await finish_upload(self._session, repository, location, digest, data)
                return digest
            except RegistryUnavailable:
                if failures >= policy.attempts:
                    raise
                self.stats.retries += 1
                await asyncio.sleep(policy.backoff_s(failures))
        raise AssertionError("unreachable: the loop returns or raises")

    async def push_blob_stream(
        self,
        repository: str,
        chunks: AsyncIterable[bytes],
        *,
        chunk_size: int | None = DEFAULT_CHUNK_SIZE,
        digest: Digest | None = None,
    ) -> PushedBlob:
        """Upload a stream of any length as one blob: `chunk_size` bytes per PATCH,
        or the whole stream in one streamed PATCH when `chunk_size` is None.

        Chunked: one PATCH is in flight while the next chunk is gathered, so memory
        stays at a few chunks, and a failed PATCH is resumed. Streamed: memory stays
        at the piece being sent; the fastest, but a failure mid-stream is not
        resumed. `digest` gives the stream's digest once it has ended, when its
        producer hashed it (so it is not hashed twice); else it is computed on the
        way. The registry checks it either way. Raises `UploadInterrupted`
        (retryable) when a failure cannot be resumed: only the caller can restart
        its stream.
        """
        return await push_stream(
            self._session, validate_repository(repository), chunks, chunk_size, digest
        )

    async def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Link a blob of another repository of this registry into `repository`.

        True when the registry mounted it (201). False when it started an upload
        instead (202: blob unknown there, or mounting not allowed); that upload is
        cancelled, and the caller pushes the blob itself.
        """
        validate_repository(repository)
        validate_repository(from_repository)
        hasher_for(digest)
        url = with_query(
            with_query(self._session.url(f"/v2/{repository}/blobs/uploads/"), "mount", digest),
            "from",
            from_repository,
        )
        response = await self._session.send(
            "POST",
            url,
            kind="mount",
            scopes=[push_scope(repository), pull_scope(from_repository)],
        )
        if response.status_code == 201:
            self.stats.blobs_mounted += 1
            return True
        if response.status_code != 202:
            raise RegistryCallFailed.from_response(
                "POST", url, response.status_code, response.content
            )
        await self._cancel_upload(repository, self._session.resolve(response))
        return False

    async def _cancel_upload(self, repository: str, location: str) -> None:
        # An abandoned upload is the registry's to expire: nothing depends on the DELETE.
        with contextlib.suppress(OciError):
            await self._session.send(
                "DELETE", location, kind="blob-upload", scopes=[push_scope(repository)]
            )

    # Manifests

    async def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest or index at a tag or digest, as stored (bytes kept exactly).

        Accepts OCI manifests and indexes and Docker schema 2 manifests and lists.
        The digest is checked against the reference when it is one, else against the
        registry's `Docker-Content-Digest`. Raises `ManifestNotFound`, `DigestMismatch`.
        """
        url = self._manifest_url(repository, reference)
        response = await self._session.send(
            "GET",
            url,
            kind="manifest",
            scopes=[pull_scope(repository)],
            headers={"Accept": media_types.MANIFEST_ACCEPT},
        )
        _raise_for_read(response, "GET", url, ManifestNotFound)
        content = response.content
        expected = (
            reference if is_digest(reference) else response.headers.get("docker-content-digest")
        )
        digest = digest_of(content, expected) if expected else sha256_digest(content)
        if expected and digest != expected:
            call = describe_call("GET", url)
            raise DigestMismatch(f"{call}: content is {digest}, expected {expected}", call=call)
        return Manifest(
            media_type=media_type_of(response.headers.get("content-type"), content),
            digest=digest,
            content=content,
        )

    async def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest a tag (or digest) points at, from a HEAD; None when absent."""
        url = self._manifest_url(repository, reference)
        response = await self._session.send(
            "HEAD",
            url,
            kind="manifest",
            scopes=[pull_scope(repository)],
            headers={"Accept": media_types.MANIFEST_ACCEPT},
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RegistryCallFailed.from_response("HEAD", url, response.status_code, b"")
        digest: str | None = response.headers.get("docker-content-digest")
        if digest:
            return digest
        # Registries need not send the header on HEAD; the content says it for sure.
        return (await self.get_manifest(repository, reference)).digest

    async def put_manifest(
        self, repository: str, reference: str, content: bytes, media_type: str
    ) -> str:
        """Store a manifest under a tag (or its digest); returns its digest.

        Raises `RegistryCallFailed` when the registry refuses it (for example
        `MANIFEST_BLOB_UNKNOWN` when a referenced blob was not pushed).
        """
        url = self._manifest_url(repository, reference)
        digest = sha256_digest(content)
        if is_digest(reference) and digest_of(content, reference) != reference:
            call = describe_call("PUT", url)
            raise DigestMismatch(f"{call}: content is {digest}, not {reference}", call=call)
        response = await self._session.send(
            "PUT",
            url,
            kind="manifest",
            scopes=[push_scope(repository)],
            headers={"Content-Type": media_type},
            content=content,
        )
        if response.status_code != 201:
            raise RegistryCallFailed.from_response(
                "PUT", url, response.status_code, response.content
            )
        stored = response.headers.get("docker-content-digest")
        if stored and stored.startswith("sha256:") and stored != digest:
            call = describe_call("PUT", url)
            raise DigestMismatch(f"{call}: registry stored {stored}, sent {digest}", call=call)
        return digest

    def _blob_url(self, repository: str, digest: str) -> str:
        validate_repository(repository)
        return self._session.url(f"/v2/{repository}/blobs/{digest}")

    def _manifest_url(self, repository: str, reference: str) -> str:
        validate_repository(repository)
        if is_digest(reference):
            hasher_for(reference)
        return self._session.url(f"/v2/{repository}/manifests/{reference}")


def _raise_for_read(
    response: httpx.Response, method: str, url: str, not_found: type[OciError]
) -> None:
    if response.status_code == 200:
        return
    error_type = not_found if response.status_code == 404 else RegistryCallFailed
    raise error_type.from_response(method, url, response.status_code, response.content)


def _check_digest(method: str, url: str, digest: str, hasher: hashlib._Hash) -> None:
    actual = f"{digest.split(':', 1)[0]}:{hasher.hexdigest()}"
    if actual != digest:
        call = describe_call(method, url)
        raise DigestMismatch(f"{call}: content is {actual}, expected {digest}", call=call)
