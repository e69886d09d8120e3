"""`ArtifactStore` on S3 (AWS, MinIO, SeaweedFS) through aioboto3.

The declared size and sha256 are stored as user metadata of the multipart upload,
so the completed object carries them and `complete_upload` needs only the upload
id. Verification streams the object back in `HASH_CHUNK_SIZE` chunks: S3's
additional checksums cannot replace it, since a multipart SHA-256 checksum is
composite (a hash of the parts' hashes, SeaweedFS too), never the sha256 of the
whole artifact that CI declares, and full-object checksums exist only for CRCs.

Uploads expire: S3 records when each multipart upload was initiated, so completion
refuses (and aborts) one older than `upload_expiry_s`, and `sweep_expired_uploads`
aborts every such upload under the registry's key space, parts and all.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from mlplane_runtime.errors import Unavailable
from mlplane_runtime.s3 import MISSING_CODES, S3Connection, error_code, s3_client
from mlplane_runtime.s3_bucket import BucketSpace, open_bucket

from mlplane_registry.artifacts.errors import (
    ArtifactMismatch,
    ArtifactNotFound,
    InvalidUpload,
    UploadExpired,
    UploadNotFound,
)
from mlplane_registry.artifacts.store import (
    DEFAULT_DOWNLOAD_EXPIRES_S,
    DEFAULT_PART_SIZE,
    DEFAULT_UPLOAD_EXPIRES_S,
    DEFAULT_UPLOAD_EXPIRY_S,
    HASH_CHUNK_SIZE,
    ArtifactInfo,
    PartETags,
    PartUpload,
    UploadPlan,
    normalize_etag,
    plan_parts,
    validate_key,
)

_META_SHA256 = "mlplane-sha256"
_META_SIZE = "mlplane-size"
# Every key the registry hands out starts here (artifacts_api.key_prefix), under the
# store's prefix; the sweep leaves other multipart uploads in a shared bucket alone.
_UPLOADS_PREFIX = "teams/"


@contextlib.contextmanager
def _storage_unavailable(action: str) -> Iterator[None]:
    """Connection failures and 5xx from storage become `Unavailable` (retryable)."""
    try:
        yield
    except BotoCoreError as exc:
        raise Unavailable(f"object storage did not answer while {action}: {exc}") from exc
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if isinstance(status, int) and status >= 500:
            raise Unavailable(f"object storage failed while {action}: {exc}") from exc
        raise


def _encode_upload_id(key: str, s3_upload_id: str) -> str:
    raw = json.dumps([key, s3_upload_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_upload_id(upload_id: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(upload_id + "=" * (-len(upload_id) % 4))
        key, s3_upload_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise UploadNotFound(f"no upload with id {upload_id!r}") from exc
    if not isinstance(key, str) or not isinstance(s3_upload_id, str):
        raise UploadNotFound(f"no upload with id {upload_id!r}")
    return validate_key(key), s3_upload_id


class S3ArtifactStore:
    """Artifacts under `prefix` in one S3 bucket (the platform's, shared with the other
    services), made if missing at `start()`; `setting` names where the bucket comes from.

    `public_endpoint_url` is the address uploaders and downloaders reach (when it
    differs from the one this service uses); presigned URLs are signed for it.
    Use as `async with S3ArtifactStore(...) as store:` or `start()` / `close()`.
    """

    def __init__(
        self,
        endpoint_url: str | None,
        bucket: str,
        region: str,
        access_key: str,
        secret_key: str,
        *,
        public_endpoint_url: str | None = None,
        upload_expiry_s: int = DEFAULT_UPLOAD_EXPIRY_S,
        prefix: str = "",
        setting: str = "MLPLANE_REGISTRY_S3_BUCKET",
    ) -> None:
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self.space = BucketSpace(bucket, prefix, setting)
        self.region = region
        self.upload_expiry_s = upload_expiry_s
        self._connection = S3Connection(endpoint_url, region, access_key, secret_key)
        self._public_endpoint_url = public_endpoint_url or endpoint_url
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._presigner: Any = None

    async def start(self) -> None:
        """Open the client and create the bucket if it does not exist.

        Raises `Unavailable` naming the bucket's setting when storage does not answer or
        the bucket is missing and cannot be made.
        """
        if self._stack is not None:
            return
        stack = AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(s3_client(self._connection))
            self._presigner = self._client
            if self._public_endpoint_url != self.endpoint_url:
                public = replace(self._connection, endpoint_url=self._public_endpoint_url)
                self._presigner = await stack.enter_async_context(s3_client(public))
            await open_bucket(self._s3, self.space, self.endpoint_url)
        except BaseException:
            await stack.aclose()
            self._client = self._presigner = None
            raise
        self._stack = stack

    async def close(self) -> None:
        """Close the client; the store can be started again."""
        stack, self._stack = self._stack, None
        self._client = self._presigner = None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> S3ArtifactStore:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def _s3(self) -> Any:
        if self._client is None:
            raise RuntimeError("S3ArtifactStore is not started: call start() first")
        return self._client

    def uri(self, key: str) -> str:
        return self.space.uri(key)

    def client(self) -> Any:
        """The started S3 client (it may read other buckets the credentials allow)."""
        return self._s3

    async def start_upload(
        self,
        key: str,
        size: int,
        sha256: str,
        part_size: int = DEFAULT_PART_SIZE,
        expires_s: int = DEFAULT_UPLOAD_EXPIRES_S,
    ) -> UploadPlan:
        digest, sizes = plan_parts(key, size, sha256, part_size)
        with _storage_unavailable(f"starting the upload of {key!r}"):
            created = await self._s3.create_multipart_upload(
                Bucket=self.bucket,
                Key=self.space.key(key),
                ContentType="application/octet-stream",
                Metadata={_META_SHA256: digest, _META_SIZE: str(size)},
            )
        s3_upload_id = created["UploadId"]
        parts = []
        for number, part_bytes in enumerate(sizes, start=1):
            url = await self._presigner.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": self.bucket,
                    "Key": self.space.key(key),
                    "UploadId": s3_upload_id,
                    "PartNumber": number,
                },
                ExpiresIn=expires_s,
            )
            parts.append(PartUpload(number=number, url=url, size=part_bytes))
        return UploadPlan(
            upload_id=_encode_upload_id(key, s3_upload_id),
            key=key,
            size=size,
            sha256=digest,
            part_size=part_size,
            parts=tuple(parts),
            expires_s=expires_s,
        )

    async def complete_upload(self, upload: UploadPlan | str, parts: PartETags) -> ArtifactInfo:
        upload_id = upload.upload_id if isinstance(upload, UploadPlan) else upload
        key, s3_upload_id = _decode_upload_id(upload_id)
        listed = sorted((int(n), normalize_etag(e)) for n, e in parts)
        if not listed or len({n for n, _ in listed}) != len(listed):
            raise InvalidUpload(
                f"upload of {key!r}: parts must list each part number once", field="parts"
            )
        with _storage_unavailable(f"completing the upload of {key!r}"):
            initiated = await self._initiated(key, s3_upload_id)
            if initiated is not None and self._expired(initiated):
                await self.abort_upload(upload_id)
                raise UploadExpired(
                    f"upload {upload_id} was not completed within {self.upload_expiry_s} s "
                    "and was dropped; start a new upload"
                )
            try:
                await self._s3.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=self.space.key(key),
                    UploadId=s3_upload_id,
                    MultipartUpload={
                        "Parts": [{"PartNumber": n, "ETag": f'"{e}"'} for n, e in listed]
                    },
                )
            except ClientError as exc:
                code = error_code(exc)
                if code in {"InvalidPart", "InvalidPartOrder", "EntityTooSmall"}:
                    raise InvalidUpload(
                        f"upload of {key!r}: storage refused the part list ({code}): "
                        f"{exc.response.get('Error', {}).get('Message', '')}",
                        field="parts",
                    ) from exc
                if code != "NoSuchUpload":
                    raise
                # Completed before (a retried call) or never started: the object says.
        return await self._verify(key)

    async def _verify(self, key: str) -> ArtifactInfo:
        """Check the stored object against its declared size and sha256, streaming it."""
        with _storage_unavailable(f"verifying {key!r}"):
            try:
                head = await self._s3.head_object(Bucket=self.bucket, Key=self.space.key(key))
            except ClientError as exc:
                if error_code(exc) in MISSING_CODES:
                    raise UploadNotFound(f"no upload of {key!r} to complete") from exc
                raise
            meta = {k.lower(): v for k, v in head.get("Metadata", {}).items()}
            if _META_SHA256 not in meta or _META_SIZE not in meta:
                raise UploadNotFound(f"{key!r} was not uploaded through start_upload")
            declared_sha256, declared_size = meta[_META_SHA256], int(meta[_META_SIZE])
            actual_size = int(head["ContentLength"])
            if actual_size != declared_size:
                await self.delete(key)
                raise ArtifactMismatch(key, "size", declared_size, actual_size)
            hasher = hashlib.sha256()
            got = await self._s3.get_object(Bucket=self.bucket, Key=self.space.key(key))
            body = got["Body"]
            async with body:  # releases the connection, even when hashing fails
                async for chunk in body.iter_chunks(HASH_CHUNK_SIZE):
                    hasher.update(chunk)
            actual_sha256 = hasher.hexdigest()
            if actual_sha256 != declared_sha256:
                await self.delete(key)
                raise ArtifactMismatch(key, "sha256", declared_sha256, actual_sha256)
        return ArtifactInfo(key=key, uri=self.uri(key), size=actual_size, sha256=actual_sha256)

    async def upload_key(self, upload_id: str) -> str:
        key, _ = _decode_upload_id(upload_id)
        return key

    async def abort_upload(self, upload: UploadPlan | str) -> None:
        upload_id = upload.upload_id if isinstance(upload, UploadPlan) else upload
        key, s3_upload_id = _decode_upload_id(upload_id)
        await self._abort(self.space.key(key), s3_upload_id)

    async def _abort(self, object_key: str, s3_upload_id: str) -> None:
        with _storage_unavailable(f"aborting the upload of {object_key!r}"):
            try:
                await self._s3.abort_multipart_upload(
                    Bucket=self.bucket, Key=object_key, UploadId=s3_upload_id
                )
            except ClientError as exc:
                if error_code(exc) not in {"NoSuchUpload", *MISSING_CODES}:
                    raise

    # -- expiry ------------------------------------------------------------------

    def _expired(self, initiated: datetime) -> bool:
        return datetime.now(UTC) - initiated > timedelta(seconds=self.upload_expiry_s)

    async def _initiated(self, key: str, s3_upload_id: str) -> datetime | None:
        """When S3 says the upload started; None when it has no such open upload."""
        object_key = self.space.key(key)
        async for upload in self._multipart_uploads(object_key):
            if upload.get("Key") == object_key and upload.get("UploadId") == s3_upload_id:
                initiated: datetime = upload["Initiated"]
                return initiated
        return None

    async def _multipart_uploads(self, prefix: str) -> Any:
        paginator = self._s3.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                yield upload

    async def sweep_expired_uploads(self) -> int:
        swept = 0
        with _storage_unavailable("looking for expired uploads"):
            expired = [
                (upload["Key"], upload["UploadId"])
                async for upload in self._multipart_uploads(self.space.key(_UPLOADS_PREFIX))
                if self._expired(upload["Initiated"])
            ]
        for key, s3_upload_id in expired:
            await self._abort(key, s3_upload_id)
            swept += 1
        return swept

    async def download_url(self, key: str, expires_s: int = DEFAULT_DOWNLOAD_EXPIRES_S) -> str:
        validate_key(key)
        with _storage_unavailable(f"looking up {key!r}"):
            try:
                await self._s3.head_object(Bucket=self.bucket, Key=self.space.key(key))
            except ClientError as exc:
                if error_code(exc) in MISSING_CODES:
                    raise ArtifactNotFound(f"no artifact {key!r}") from exc
                raise
        url: str = await self._presigner.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.space.key(key)},
            ExpiresIn=expires_s,
        )
        return url

    async def delete(self, key: str) -> None:
        validate_key(key)
        with _storage_unavailable(f"deleting {key!r}"):
            await self._s3.delete_object(Bucket=self.bucket, Key=self.space.key(key))
