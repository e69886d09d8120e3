"""Small OCI images built in memory from files, for scanning by real Trivy.

An image here is a config, a manifest and gzip'd tar layers, each a content-
addressed blob. It can be written as an OCI image layout (what `trivy image
--input <dir>` reads in embedded mode) or pushed to a registry (`registry.py`).
Same files give the same digests: tar headers carry fixed times and owners.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlplane_oci.media_types import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST

__all__ = [
    "OCI_CONFIG",
    "OCI_LAYER_GZIP",
    "OCI_MANIFEST",
    "Blob",
    "Layer",
    "OciImage",
    "build_image",
    "sha256_digest",
    "tar_layer",
    "with_manifest",
    "write_layout",
]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}


@dataclass(frozen=True)
class Layer:
    """A gzip'd tar layer and its diff id (the digest of the uncompressed tar)."""

    blob: Blob
    diff_id: str
    annotations: Mapping[str, str] = field(default_factory=dict)

    def descriptor(self) -> dict[str, object]:
        descriptor = self.blob.descriptor()
        if self.annotations:
            descriptor["annotations"] = dict(self.annotations)
        return descriptor


@dataclass(frozen=True)
class OciImage:
    config: Blob
    layers: tuple[Layer, ...]
    manifest: Blob

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def blobs(self) -> list[Blob]:
        return [layer.blob for layer in self.layers] + [self.config]


def tar_layer(files: Mapping[str, bytes | str]) -> Layer:
    """One layer holding `files` (path → content), parent directories included."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories: set[str] = set()
        for path in sorted(files):
            parts = path.strip("/").split("/")
            for depth in range(1, len(parts)):
                directories.add("/".join(parts[:depth]))
        for directory in sorted(directories):
            info = tarfile.TarInfo(directory + "/")
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for path in sorted(files):
            content = files[path]
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path.strip("/"))
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    uncompressed = raw.getvalue()
    # mtime=0: the same files always give the same layer digest.
    compressed = gzip.compress(uncompressed, mtime=0)
    return Layer(Blob(OCI_LAYER_GZIP, compressed), sha256_digest(uncompressed))


def build_image(
    layers: Sequence[Mapping[str, bytes | str]],
    *,
    config_extra: Mapping[str, object] | None = None,
    config_media_type: str = OCI_CONFIG,
) -> OciImage:
    """An amd64 linux image whose layers hold the given files, in order."""
    built = tuple(tar_layer(files) for files in layers)
    config_doc: dict[str, object] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in built]},
        "history": [{"created_by": "mlplane test image"} for _ in built],
    }
    config_doc.update(config_extra or {})
    config = Blob(config_media_type, json.dumps(config_doc, sort_keys=True).encode())
    return with_manifest(config, built)


def with_manifest(config: Blob, layers: tuple[Layer, ...]) -> OciImage:
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    manifest = Blob(OCI_MANIFEST, json.dumps(manifest_doc, sort_keys=True).encode())
    return OciImage(config=config, layers=layers, manifest=manifest)


def write_layout(image: OciImage, directory: Path, *, tag: str = "latest") -> Path:
    """Write `image` as an OCI image layout in `directory` (created) and return it."""
    blobs_dir = directory / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    for blob in [*image.blobs(), image.manifest]:
        (blobs_dir / blob.digest.removeprefix("sha256:")).write_bytes(blob.data)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    descriptor = image.manifest.descriptor()
    descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index = {"schemaVersion": 2, "manifests": [descriptor]}
    (directory / "index.json").write_text(json.dumps(index))
    return directory
