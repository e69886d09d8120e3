"""An OCI image layout directory: where the embedded mode puts images instead of a registry.

Layout (OCI image spec, image-layout): `oci-layout`, `index.json` naming each
image by the `org.opencontainers.image.ref.name` annotation, and
`blobs/sha256/<hex>`. Every file appears whole or not at all: it is written to
a temporary file in the root (as skopeo does) and renamed into place. All file
I/O runs in worker threads; index updates are serialised by a lock per layout
directory in this process and by `flock` on the directory across processes.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import re
import threading
import uuid
from collections.abc import AsyncIterable, Callable
from pathlib import Path
from typing import IO, Any, NamedTuple

from mlplane_oci.media_types import IMAGE_MANIFESTS, INDEXES, OCI_INDEX

from mlplane_builder.image.canonical_json import canonical_json
from mlplane_builder.image.errors import (
    CorruptLayout,
    InvalidManifest,
    InvalidRefName,
    LayoutBlobMissing,
)
from mlplane_builder.image.manifest import Descriptor, check_digest, digest_of

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = "1.0.0"
_PARTIAL_PREFIX = ".oci-partial-"
_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_REF = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")

_index_locks: dict[Path, threading.Lock] = {}
_index_locks_guard = threading.Lock()


class WrittenBlob(NamedTuple):
    digest: str
    size: int


class StoredManifest(NamedTuple):
    """A manifest in the layout: its index entry and its exact bytes."""

    descriptor: Descriptor
    content: bytes

    @property
    def digest(self) -> str:
        return self.descriptor.digest

    @property
    def media_type(self) -> str:
        return self.descriptor.media_type


def check_ref_name(ref_name: str) -> str:
    """`ref_name` itself when the layout spec's grammar allows it; else `InvalidRefName`."""
    if not isinstance(ref_name, str) or not _REF.match(ref_name):
        raise InvalidRefName(
            f"{ref_name!r} is not an OCI layout ref name (letters and digits, joined by "
            "one of - . _ : @ + or '--', in '/'-separated parts)"
        )
    return ref_name


class OciLayout:
    """One OCI image layout directory; constructing it creates the directory if missing.

    The constructor touches the disk (once, small files); build it at start-up
    or in a worker thread. Every other method keeps file I/O off the event loop.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs" / "sha256"
        self._blobs.mkdir(parents=True, exist_ok=True)
        if not (self.root / "oci-layout").exists():
            self._replace("oci-layout", canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
        if not (self.root / "index.json").exists():
            with self._index_lock():
                if not (self.root / "index.json").exists():
                    self._write_index([])

    def blob_path(self, digest: str) -> Path:
        """Where the blob named `digest` lives; raises `InvalidManifest` for a bad digest."""
        algorithm, hexpart = check_digest(digest).split(":", 1)
        return self.root / "blobs" / algorithm / hexpart

    async def has_blob(self, digest: str) -> bool:
        return await asyncio.to_thread(self.blob_path(digest).is_file)

    async def read_blob(self, digest: str) -> bytes:
        """The blob's bytes; raises `LayoutBlobMissing`, or `CorruptLayout` if they hash wrong."""
        return await asyncio.to_thread(self._read_blob, digest)

    async def write_blob(self, content: bytes) -> str:
        """Store `content`; its digest. Writing the same content again changes nothing."""
        digest = digest_of(content)
        await asyncio.to_thread(self._write_blob, digest, content)
        return digest

    async def write_blob_stream(self, chunks: AsyncIterable[bytes]) -> WrittenBlob:
        """Store what `chunks` yields, one chunk in memory at a time; its digest and size."""
        sha = hashlib.sha256()
        partial = self.root / f"{_PARTIAL_PREFIX}{uuid.uuid4().hex}"
        handle = await asyncio.to_thread(partial.open, "wb")
        size = 0
        try:
            async for chunk in chunks:
                await asyncio.to_thread(_write_and_hash, handle, sha, chunk)
                size += len(chunk)
            await asyncio.to_thread(_close_durably, handle)
            digest = f"sha256:{sha.hexdigest()}"
            await asyncio.to_thread(os.replace, partial, self.blob_path(digest))
        except BaseException:
            await asyncio.to_thread(_discard, handle, partial)
            raise
        return WrittenBlob(digest, size)

    async def add_manifest(self, content: bytes, media_type: str, *, ref_name: str) -> str:
        """Store a manifest (or index) and name it `ref_name` in index.json; its digest.

        An entry already carrying `ref_name` is replaced. Raises `InvalidRefName`
        and, for a media type that is neither a manifest nor an index,
        `InvalidManifest`.
        """
        check_ref_name(ref_name)
        if media_type not in (*IMAGE_MANIFESTS, *INDEXES):
            raise InvalidManifest(f"{media_type!r} is not a manifest or index media type")
        digest = await self.write_blob(content)
        entry = Descriptor(media_type, digest, len(content), {REF_NAME: ref_name})
        await asyncio.to_thread(self._update_index, lambda entries: _named(entries, entry))
        return digest

    async def read_manifest(self, ref_name: str) -> StoredManifest | None:
        """The manifest named `ref_name`, or None when index.json names none so.

        Raises `LayoutBlobMissing` when index.json names a manifest that is not
        there, `CorruptLayout` when index.json or the manifest is damaged.
        """
        return await asyncio.to_thread(self._read_manifest, ref_name)

    def refs(self) -> dict[str, Descriptor]:
        """Every named manifest, by ref name (a quick sync read, for tests and tools)."""
        named: dict[str, Descriptor] = {}
        for entry in self._read_index():
            ref = (entry.annotations or {}).get(REF_NAME)
            if ref is not None:
                named[ref] = entry
        return named

    # -- worker-thread side --------------------------------------------------------

    def _read_blob(self, digest: str) -> bytes:
        try:
            content = self.blob_path(digest).read_bytes()
        except FileNotFoundError as exc:
            raise LayoutBlobMissing(f"{self.root} holds no blob {digest}", digest=digest) from exc
        # sha512 blobs are only ever read here, never written; sha256 ones are checked.
        if digest.startswith("sha256:") and digest_of(content) != digest:
            raise CorruptLayout(f"blob {digest} in {self.root} hashes to {digest_of(content)}")
        return content

    def _write_blob(self, digest: str, content: bytes) -> None:
        target = self.blob_path(digest)
        if target.is_file():
            return
        partial = self.root / f"{_PARTIAL_PREFIX}{uuid.uuid4().hex}"
        handle = partial.open("wb")
        try:
            handle.write(content)
            _close_durably(handle)
            os.replace(partial, target)
        except BaseException:
            _discard(handle, partial)
            raise

    def _read_manifest(self, ref_name: str) -> StoredManifest | None:
        entry = self.refs().get(ref_name)
        if entry is None:
            return None
        return StoredManifest(entry, self._read_blob(entry.digest))

    def _update_index(self, change: Callable[[list[Descriptor]], list[Descriptor]]) -> None:
        with self._index_lock():
            self._write_index(change(self._read_index()))

    def _read_index(self) -> list[Descriptor]:
        try:
            document = json.loads((self.root / "index.json").read_bytes())
            entries = document["manifests"]
            if not isinstance(entries, list):
                raise TypeError("manifests is not a list")
            return [Descriptor.from_json(entry) for entry in entries]
        except (ValueError, KeyError, TypeError, InvalidManifest) as exc:
            raise CorruptLayout(f"{self.root}/index.json is not an OCI index: {exc}") from exc

    def _write_index(self, entries: list[Descriptor]) -> None:
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [entry.to_json() for entry in entries],
        }
        self._replace("index.json", canonical_json(document))

    def _replace(self, name: str, content: bytes) -> None:
        partial = self.root / f"{_PARTIAL_PREFIX}{uuid.uuid4().hex}"
        handle = partial.open("wb")
        try:
            handle.write(content)
            _close_durably(handle)
            os.replace(partial, self.root / name)
        except BaseException:
            _discard(handle, partial)
            raise

    def _index_lock(self) -> _IndexLock:
        key = self.root.resolve()
        with _index_locks_guard:
            lock = _index_locks.setdefault(key, threading.Lock())
        return _IndexLock(lock, key)


class _IndexLock:
    """This process's lock for one layout, then `flock` on its directory for other processes."""

    def __init__(self, lock: threading.Lock, root: Path) -> None:
        self._lock = lock
        self._root = root
        self._fd = -1

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            self._fd = os.open(self._root, os.O_RDONLY)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            if self._fd >= 0:
                os.close(self._fd)
            self._lock.release()
            raise

    def __exit__(self, *_: object) -> None:
        try:
            os.close(self._fd)  # closing releases the flock
        finally:
            self._fd = -1
            self._lock.release()


def _named(entries: list[Descriptor], entry: Descriptor) -> list[Descriptor]:
    """`entries` with `entry` in place of any other holding the same ref name."""
    ref = (entry.annotations or {})[REF_NAME]
    kept = [e for e in entries if (e.annotations or {}).get(REF_NAME) != ref]
    return [*kept, entry]


def _write_and_hash(handle: IO[bytes], sha: hashlib._Hash, chunk: bytes) -> None:
    sha.update(chunk)
    handle.write(chunk)


def _close_durably(handle: IO[bytes]) -> None:
    # Flushed to disk before the rename, so a crash never leaves a named blob
    # whose bytes did not make it.
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def _discard(handle: IO[bytes], partial: Path) -> None:
    handle.close()
    partial.unlink(missing_ok=True)
