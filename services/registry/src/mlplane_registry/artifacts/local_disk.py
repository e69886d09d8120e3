"""`ArtifactStore` on the local disk, for the embedded mode (`make run`).

Layout under `root`: `objects/<key>` holds verified artifacts, `uploads/<id>/`
one multipart upload (`upload.json` with the declaration, `part-<n>` and its
`part-<n>.etag`). Files are written and hashed in `HASH_CHUNK_SIZE` chunks off
the event loop, so memory stays constant whatever the size.

"Presigned" URLs are HTTP URLs under `base_url` (where the registry's API is
mounted) carrying `expires` and an HMAC-SHA256 `signature` of the method, path
and expiry, exactly as S3's presigned URLs work; `local_http.build_router(store)`
serves them. So CI uploads to the embedded registry with the same code as to S3.
The signing key is kept beside `root` (`<root>.signing-key`), never inside it, so
URLs survive a restart and nothing that reads under `root` can reach the key; a key
an older version kept at `root/.signing-key` is moved there on first use.

Keys resolve strictly inside `objects/`: a key with a `..` or hidden segment, or a
path that leaves the directory through a symlink, names no artifact.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import time
import uuid
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from mlplane_runtime.errors import PROBLEM_BASE_URI, MlplaneError

from mlplane_registry.artifacts.errors import (
    ArtifactMismatch,
    ArtifactNotFound,
    InvalidUpload,
    PartTooLarge,
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

DEFAULT_BASE_URL = "http://127.0.0.1:8080/registry"
UPLOADS_PATH = "/artifacts/uploads"
OBJECTS_PATH = "/artifacts/objects"
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")


class SignedUrlRefused(MlplaneError):
    """A signed URL that is expired, tampered with or signed by another key."""

    status: ClassVar[int] = 403
    problem_type: ClassVar[str] = f"{PROBLEM_BASE_URI}/signed-url-refused"
    title: ClassVar[str] = "Signed URL refused"
    retryable: ClassVar[bool] = False


class LocalDiskArtifactStore:
    """Artifacts as files under `root`, uploaded and downloaded by signed URLs.

    `upload_expiry_s`: an upload not completed this long after it started is refused
    at completion and removed by `sweep_expired_uploads`.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        signing_key: bytes | None = None,
        upload_expiry_s: int = DEFAULT_UPLOAD_EXPIRY_S,
    ) -> None:
        self.root = Path(root)
        self.base_url = base_url.rstrip("/")
        self.upload_expiry_s = upload_expiry_s
        self._signing_key = signing_key
        # One completion at a time per upload: a retry racing the first call waits
        # for it and then verifies the stored object instead of half-read parts.
        self._completing: dict[str, asyncio.Lock] = {}

    @property
    def _objects(self) -> Path:
        return self.root / "objects"

    @property
    def _uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def signing_key_file(self) -> Path:
        """Where the URL-signing key is kept: beside `root`, outside what it serves."""
        return self.root.with_name(f"{self.root.name}.signing-key")

    def _key(self) -> bytes:
        if self._signing_key is None:
            self._signing_key = _load_or_create_key(
                self.signing_key_file, legacy=self.root / ".signing-key"
            )
        return self._signing_key

    # -- signed URLs -------------------------------------------------------------

    def _signature(self, method: str, path: str, expires: int) -> str:
        message = f"{method}\n{path}\n{expires}".encode()
        return hmac.new(self._key(), message, hashlib.sha256).hexdigest()

    def _object_path(self, key: str) -> Path:
        """The file of `key`, strictly inside `objects/`. Raises `InvalidUpload`,
        `ArtifactNotFound` (a path that a symlink leads out of the directory)."""
        objects = self._objects.resolve()
        path = objects / validate_key(key)
        # resolve() follows symlinks: a path that changes under it went through one.
        resolved = path.resolve()
        if resolved != path or not resolved.is_relative_to(objects):
            raise ArtifactNotFound(f"no artifact {key!r}")
        return path

    def _signed_url(self, method: str, path: str, expires_s: int) -> str:
        expires = int(time.time()) + expires_s
        query = urlencode({"expires": expires, "signature": self._signature(method, path, expires)})
        return f"{self.base_url}{path}?{query}"

    def check_signature(self, method: str, path: str, expires: int, signature: str) -> None:
        """Accept a request to `path` (relative to `base_url`) or raise `SignedUrlRefused`.

        Compared as bytes in constant time: any signature string, non-ASCII included,
        is refused rather than failing.
        """
        if expires < time.time():
            raise SignedUrlRefused(f"the signed URL for {path} expired")
        expected = self._signature(method, path, expires).encode()
        if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
            raise SignedUrlRefused(f"bad signature for {method} {path}")

    @staticmethod
    def part_path(upload_id: str, number: int) -> str:
        return f"{UPLOADS_PATH}/{upload_id}/parts/{number}"

    @staticmethod
    def object_url_path(key: str) -> str:
        return f"{OBJECTS_PATH}/{quote(key)}"

    # -- the ArtifactStore port --------------------------------------------------

    def uri(self, key: str) -> str:
        return (self._objects.resolve() / validate_key(key)).as_uri()

    async def start_upload(
        self,
        key: str,
        size: int,
        sha256: str,
        part_size: int = DEFAULT_PART_SIZE,
        expires_s: int = DEFAULT_UPLOAD_EXPIRES_S,
    ) -> UploadPlan:
        digest, sizes = plan_parts(key, size, sha256, part_size)
        upload_id = uuid.uuid4().hex
        manifest = {
            "key": key,
            "size": size,
            "sha256": digest,
            "parts": len(sizes),
            "part_size": part_size,
            "started_at": time.time(),
        }
        await asyncio.to_thread(self._write_manifest, upload_id, manifest)
        parts = tuple(
            PartUpload(
                number=n,
                url=self._signed_url("PUT", self.part_path(upload_id, n), expires_s),
                size=part_bytes,
            )
            for n, part_bytes in enumerate(sizes, start=1)
        )
        return UploadPlan(
            upload_id=upload_id,
            key=key,
            size=size,
            sha256=digest,
            part_size=part_size,
            parts=parts,
            expires_s=expires_s,
        )

    async def write_part(self, upload_id: str, number: int, chunks: AsyncIterable[bytes]) -> str:
        """Store one part streamed from `chunks`; its ETag (MD5 hex, as S3's).

        Raises `UploadNotFound` for an unknown upload, `InvalidUpload` for a part
        number the upload does not have, `UploadExpired`, `PartTooLarge` as soon as
        more bytes come than the plan gave the part (reading stops there).
        """
        manifest = await asyncio.to_thread(self._read_manifest, upload_id)
        if manifest.get("completed") or not 1 <= number <= int(manifest["parts"]):
            raise InvalidUpload(f"upload {upload_id} has no open part {number}", field="number")
        self._check_not_expired(upload_id, manifest)
        limit = _part_limit(manifest, number)
        directory = self._uploads / upload_id
        target = directory / f"part-{number:05d}"
        partial = directory / f".part-{number:05d}.{uuid.uuid4().hex}"
        md5 = hashlib.md5()  # noqa: S324 (S3's part ETag, not a security hash)
        handle = await asyncio.to_thread(partial.open, "wb")
        try:
            written = 0
            async for chunk in chunks:
                written += len(chunk)
                if written > limit:
                    raise PartTooLarge(
                        f"part {number} of upload {upload_id} is {limit} bytes; more came"
                    )
                md5.update(chunk)
                await asyncio.to_thread(handle.write, chunk)
        except BaseException:
            handle.close()
            partial.unlink(missing_ok=True)
            raise
        await asyncio.to_thread(handle.close)
        etag = md5.hexdigest()
        await asyncio.to_thread(_publish_part, partial, target, etag)
        return etag

    async def complete_upload(self, upload: UploadPlan | str, parts: PartETags) -> ArtifactInfo:
        upload_id = upload.upload_id if isinstance(upload, UploadPlan) else upload
        lock = self._completing.setdefault(upload_id, asyncio.Lock())
        try:
            async with lock:
                return await asyncio.to_thread(self._complete, upload_id, list(parts))
        finally:
            if not lock.locked() and self._completing.get(upload_id) is lock:
                del self._completing[upload_id]

    def _complete(self, upload_id: str, parts: list[tuple[int, str]]) -> ArtifactInfo:
        manifest = self._read_manifest(upload_id)
        key, size, digest = str(manifest["key"]), int(manifest["size"]), str(manifest["sha256"])
        target = self._object_path(key)
        if manifest.get("completed"):
            # A retried call: verify what is stored again, as the S3 store does.
            if not target.exists():
                raise UploadNotFound(f"upload {upload_id} completed but {key!r} is gone")
            actual_size, actual_sha256 = _hash_files([target])
            return self._accept(key, size, digest, actual_size, actual_sha256, target)
        if self._expired(manifest):
            shutil.rmtree(self._uploads / upload_id, ignore_errors=True)
            raise UploadExpired(
                f"upload {upload_id} was not completed within {self.upload_expiry_s} s and "
                "was dropped; start a new upload"
            )
        directory = self._uploads / upload_id
        listed = sorted((int(n), normalize_etag(e)) for n, e in parts)
        expected_numbers = list(range(1, int(manifest["parts"]) + 1))
        if [n for n, _ in listed] != expected_numbers:
            got = [n for n, _ in listed]
            raise InvalidUpload(
                f"upload of {key!r}: parts must be {expected_numbers}, got {got}",
                field="parts",
            )
        files = []
        for number, etag in listed:
            part = directory / f"part-{number:05d}"
            stored = directory / f"part-{number:05d}.etag"
            if not part.exists() or stored.read_text() != etag:
                raise InvalidUpload(
                    f"upload of {key!r}: part {number} was not uploaded with ETag {etag}",
                    field="parts",
                )
            files.append(part)
        target.parent.mkdir(parents=True, exist_ok=True)
        assembling = target.parent / f".{target.name}.{upload_id}"
        try:
            actual_size, actual_sha256 = _hash_files(files, copy_to=assembling)
            if actual_size == size and actual_sha256 == digest:
                os.replace(assembling, target)
        finally:
            assembling.unlink(missing_ok=True)
        # The upload is used up either way, as S3's is once completed.
        manifest["completed"] = True
        self._write_manifest(upload_id, manifest)
        for leftover in directory.glob("*part-*"):
            leftover.unlink(missing_ok=True)
        return self._accept(key, size, digest, actual_size, actual_sha256, None)

    def _accept(
        self,
        key: str,
        size: int,
        digest: str,
        actual_size: int,
        actual_sha256: str,
        stored: Path | None,
    ) -> ArtifactInfo:
        if actual_size != size or actual_sha256 != digest:
            if stored is not None:
                stored.unlink(missing_ok=True)
            if actual_size != size:
                raise ArtifactMismatch(key, "size", size, actual_size)
            raise ArtifactMismatch(key, "sha256", digest, actual_sha256)
        return ArtifactInfo(key=key, uri=self.uri(key), size=size, sha256=digest)

    async def upload_key(self, upload_id: str) -> str:
        manifest = await asyncio.to_thread(self._read_manifest, upload_id)
        return str(manifest["key"])

    async def abort_upload(self, upload: UploadPlan | str) -> None:
        upload_id = upload.upload_id if isinstance(upload, UploadPlan) else upload
        if _UPLOAD_ID.match(upload_id):
            await asyncio.to_thread(shutil.rmtree, self._uploads / upload_id, True)

    async def download_url(self, key: str, expires_s: int = DEFAULT_DOWNLOAD_EXPIRES_S) -> str:
        self.object_file(key)
        return self._signed_url("GET", self.object_url_path(key), expires_s)

    def object_file(self, key: str) -> Path:
        """The file of a stored artifact; raises `ArtifactNotFound`, `InvalidUpload`."""
        path = self._object_path(key)
        if not path.is_file():
            raise ArtifactNotFound(f"no artifact {key!r}")
        return path

    async def delete(self, key: str) -> None:
        path = self._object_path(key)
        await asyncio.to_thread(path.unlink, True)

    # -- expiry ------------------------------------------------------------------

    def _expired(self, manifest: dict[str, Any]) -> bool:
        started = float(manifest.get("started_at", 0.0))
        return time.time() - started > self.upload_expiry_s

    def _check_not_expired(self, upload_id: str, manifest: dict[str, Any]) -> None:
        if self._expired(manifest):
            raise UploadExpired(
                f"upload {upload_id} was not completed within {self.upload_expiry_s} s; "
                "start a new upload"
            )

    async def sweep_expired_uploads(self) -> int:
        return await asyncio.to_thread(self._sweep)

    def _sweep(self) -> int:
        swept = 0
        if not self._uploads.is_dir():
            return swept
        cutoff = time.time() - self.upload_expiry_s
        for directory in self._uploads.iterdir():
            if not _UPLOAD_ID.match(directory.name):
                continue
            try:
                manifest = self._read_manifest(directory.name)
                # Uploads from before `started_at` was recorded: their directory's age.
                started = float(manifest.get("started_at", directory.stat().st_mtime))
            except (UploadNotFound, OSError, ValueError):
                started = _mtime(directory)
            if started < cutoff:
                shutil.rmtree(directory, ignore_errors=True)
                swept += 1
        return swept

    # -- manifests ---------------------------------------------------------------

    def _manifest_file(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id):
            raise UploadNotFound(f"no upload with id {upload_id!r}")
        return self._uploads / upload_id / "upload.json"

    def _read_manifest(self, upload_id: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._manifest_file(upload_id).read_text())
        except FileNotFoundError as exc:
            raise UploadNotFound(f"no upload with id {upload_id!r}") from exc
        return data

    def _write_manifest(self, upload_id: str, manifest: dict[str, Any]) -> None:
        path = self._manifest_file(upload_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(manifest))
        os.replace(partial, path)


def _publish_part(partial: Path, target: Path, etag: str) -> None:
    # The ETag file is written last: a part counts only once both are in place.
    os.replace(partial, target)
    target.with_name(target.name + ".etag").write_text(etag)


def _hash_files(files: list[Path], copy_to: Path | None = None) -> tuple[int, str]:
    """Size and sha256 of the files' concatenation, optionally copied to `copy_to`."""
    hasher = hashlib.sha256()
    size = 0
    out = copy_to.open("wb") if copy_to is not None else None
    try:
        for file in files:
            with file.open("rb") as handle:
                while chunk := handle.read(HASH_CHUNK_SIZE):
                    hasher.update(chunk)
                    size += len(chunk)
                    if out is not None:
                        out.write(chunk)
        if out is not None:
            out.flush()
            os.fsync(out.fileno())
    finally:
        if out is not None:
            out.close()
    return size, hasher.hexdigest()


def _part_limit(manifest: dict[str, Any], number: int) -> int:
    """The bytes the plan gave part `number` (the whole size for pre-`part_size` plans)."""
    size, count = int(manifest["size"]), int(manifest["parts"])
    part_size = manifest.get("part_size")
    if part_size is None:
        return size
    return int(part_size) if number < count else size - int(part_size) * (count - 1)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _load_or_create_key(path: Path, *, legacy: Path) -> bytes:
    if legacy.exists():
        # Kept inside the served directory by older versions: moved out, same key,
        # so URLs already handed out stay valid.
        if path.exists():
            legacy.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(legacy, path)
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())
    return key
