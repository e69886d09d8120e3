"""Where a build puts its image: a repository in an OCI registry, or an OCI image layout.

Both offer the same few steps, so the pipeline is written once: find an image the
tag already names, make sure the base's layers are there, store the model layer
from a stream, store the config, store the manifest under the tag.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlplane_oci import OciClient

from mlplane_builder.base_image import BaseImage
from mlplane_builder.domain import failures
from mlplane_builder.image.layout import OciLayout
from mlplane_builder.image.manifest import Descriptor, parse_image_manifest


@dataclass(frozen=True, slots=True)
class ExistingImage:
    """An image already under the tag: its digest, layers and config labels."""

    digest: str
    layers: tuple[Descriptor, ...]
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class StoredBlob:
    digest: str
    size: int


@dataclass
class Transfer:
    """Bytes a build sent to its target: what it uploaded or copied, not what it mounted."""

    bytes_uploaded: int = 0
    layers_mounted: int = 0
    layers_present: int = 0
    layers_copied: int = 0
    notes: list[str] = field(default_factory=list)


class ImageTarget(Protocol):
    """One repository a build writes to."""

    @property
    def repository(self) -> str:
        """The repository as events name it (`host[:port]/path`, or the layout's path)."""

    async def existing(self, tag: str) -> ExistingImage | None:
        """The image under `tag` when there is one (and still is: checked by digest)."""

    async def ensure_base_layers(
        self, base: BaseImage, source: OciClient, transfer: Transfer, chunk_size: int
    ) -> None:
        """Make every layer of `base` present here, without uploading what is."""

    async def store_stream(
        self,
        chunks: AsyncIterable[bytes],
        chunk_size: int | None,
        digest: Callable[[], str] | None = None,
    ) -> StoredBlob:
        """Store a blob from a stream of its bytes; its digest is known at the end
        (`digest` gives it then, when the stream's producer hashed it). `chunk_size`:
        bytes per upload request, None for the whole stream in one."""

    async def store_blob(self, data: bytes) -> StoredBlob: ...

    async def store_manifest(self, content: bytes, media_type: str, tag: str) -> str:
        """Store the manifest under `tag`; returns its digest."""


def _labels_of(config: Any) -> dict[str, str]:
    if not isinstance(config, dict):
        return {}
    inner = config.get("config")
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


class RegistryTarget:
    """A repository in an OCI distribution registry (Harbor, distribution, ...)."""

    def __init__(self, client: OciClient, registry: str, repository: str) -> None:
        self._client = client
        self._registry = registry
        self._path = repository

    @property
    def repository(self) -> str:
        return f"{self._registry}/{self._path}"

    async def existing(self, tag: str) -> ExistingImage | None:
        digest = await self._client.manifest_digest(self._path, tag)
        if digest is None:
            return None
        manifest = await self._client.get_manifest(self._path, digest)
        if manifest.is_index:
            return None  # not something this builder pushes
        parsed = parse_image_manifest(manifest.content, manifest.media_type)
        config = json.loads(await self._client.get_blob(self._path, parsed.config.digest))
        return ExistingImage(manifest.digest, tuple(parsed.layers), _labels_of(config))

    async def ensure_base_layers(
        self, base: BaseImage, source: OciClient, transfer: Transfer, chunk_size: int
    ) -> None:
        same_registry = base.reference.registry == self._registry
        for layer in base.layers:
            if await self._client.blob_size(self._path, layer.digest) is not None:
                transfer.layers_present += 1
                continue
            if same_registry and await self._client.mount_blob(
                self._path, layer.digest, base.reference.repository
            ):
                transfer.layers_mounted += 1
                continue
            # Another registry (or a mount the registry declined): copy, streaming.
            pushed = await self._client.push_blob_stream(
                self._path,
                source.stream_blob(base.reference.repository, layer.digest),
                chunk_size=chunk_size,
            )
            if pushed.digest != layer.digest:
                raise failures.base_image_invalid(
                    base.configured, f"its layer {layer.digest} hashes to {pushed.digest}"
                )
            transfer.layers_copied += 1
            transfer.bytes_uploaded += pushed.size

    async def store_stream(
        self,
        chunks: AsyncIterable[bytes],
        chunk_size: int | None,
        digest: Callable[[], str] | None = None,
    ) -> StoredBlob:
        pushed = await self._client.push_blob_stream(
            self._path, chunks, chunk_size=chunk_size, digest=digest
        )
        return StoredBlob(pushed.digest, pushed.size)

    async def store_blob(self, data: bytes) -> StoredBlob:
        return StoredBlob(await self._client.push_blob(self._path, data), len(data))

    async def store_manifest(self, content: bytes, media_type: str, tag: str) -> str:
        return await self._client.put_manifest(self._path, tag, content, media_type)


class LayoutTarget:
    """An OCI image layout directory (embedded mode): one per repository, tags as ref names."""

    def __init__(self, layout: OciLayout, repository: str) -> None:
        self._layout = layout
        self._path = repository

    @property
    def repository(self) -> str:
        return self._path

    async def existing(self, tag: str) -> ExistingImage | None:
        found = await self._layout.read_manifest(tag)
        if found is None:
            return None
        manifest = found
        parsed = parse_image_manifest(manifest.content, manifest.media_type)
        config = json.loads(await self._layout.read_blob(parsed.config.digest))
        return ExistingImage(manifest.digest, tuple(parsed.layers), _labels_of(config))

    async def ensure_base_layers(
        self, base: BaseImage, source: OciClient, transfer: Transfer, chunk_size: int
    ) -> None:
        for layer in base.layers:
            if await self._layout.has_blob(layer.digest):
                transfer.layers_present += 1
                continue
            written = await self._layout.write_blob_stream(
                source.stream_blob(base.reference.repository, layer.digest)
            )
            if written.digest != layer.digest:
                raise failures.base_image_invalid(
                    base.configured, f"its layer {layer.digest} hashes to {written.digest}"
                )
            transfer.layers_copied += 1
            transfer.bytes_uploaded += written.size

    async def store_stream(
        self,
        chunks: AsyncIterable[bytes],
        chunk_size: int | None,
        digest: Callable[[], str] | None = None,
    ) -> StoredBlob:
        written = await self._layout.write_blob_stream(chunks)
        return StoredBlob(written.digest, written.size)

    async def store_blob(self, data: bytes) -> StoredBlob:
        digest = await self._layout.write_blob(data)
        return StoredBlob(digest, len(data))

    async def store_manifest(self, content: bytes, media_type: str, tag: str) -> str:
        return await self._layout.add_manifest(content, media_type, ref_name=tag)
