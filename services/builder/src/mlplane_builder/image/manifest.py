"""OCI descriptors, image manifests and indexes: written canonically, read leniently.

We write only OCI image manifests. We read what base images come as: OCI
manifests and indexes, Docker schema 2 manifests and manifest lists, keeping
their media types as given (the Docker layer types are the same bytes as the
OCI ones, and registries serve them under the types they were pushed with).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlplane_oci.media_types import (
    DOCKER_MANIFEST,
    IMAGE_MANIFESTS,
    INDEXES,
    OCI_MANIFEST,
)

from mlplane_builder.image.canonical_json import canonical_json
from mlplane_builder.image.errors import InvalidManifest, PlatformNotFound

# The algorithms the OCI image spec registers, with the hex length of each.
_DIGEST = re.compile(r"^(?:sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")


def digest_of(content: bytes) -> str:
    """`content`'s OCI digest, `sha256:<hex>`."""
    return f"sha256:{hashlib.sha256(content).hexdigest()}"


def check_digest(digest: object) -> str:
    """`digest` itself when it is a sha256 or sha512 OCI digest; else `InvalidManifest`."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise InvalidManifest(f"not a sha256 or sha512 digest: {digest!r}")
    return digest


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A reference to content by media type, digest and size (OCI image spec, descriptor)."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            document["annotations"] = dict(self.annotations)
        return document

    @classmethod
    def from_json(cls, document: Any) -> Descriptor:
        """A descriptor from its JSON; raises `InvalidManifest` naming the bad field."""
        if not isinstance(document, dict):
            raise InvalidManifest(f"a descriptor must be an object, got {_kind(document)}")
        media_type = document.get("mediaType")
        if not isinstance(media_type, str) or not media_type:
            raise InvalidManifest(f"a descriptor's mediaType must be a string: {document!r}")
        size = document.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidManifest(f"a descriptor's size must be a whole number: {document!r}")
        annotations = document.get("annotations")
        if annotations is not None and not _is_string_map(annotations):
            raise InvalidManifest(f"a descriptor's annotations must map strings: {document!r}")
        return cls(media_type, check_digest(document.get("digest")), size, annotations or None)


def image_manifest(
    config: Descriptor,
    layers: Sequence[Descriptor],
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """The canonical JSON of an OCI image manifest (schemaVersion 2, mediaType set)."""
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    if annotations:
        document["annotations"] = dict(annotations)
    return canonical_json(document)


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    """What the builder needs of a base image's manifest."""

    config: Descriptor
    layers: tuple[Descriptor, ...]


def parse_image_manifest(content: bytes, media_type: str) -> ParsedManifest:
    """The config and layers of an OCI image manifest or a Docker schema 2 manifest.

    `media_type` is what the registry served it as. Raises `InvalidManifest`
    for an index (select a platform first), another media type, or a document
    that is not a schema 2 image manifest.
    """
    if media_type in INDEXES:
        raise InvalidManifest(f"{media_type} is an index, not an image manifest: select a platform")
    if media_type not in IMAGE_MANIFESTS:
        raise InvalidManifest(f"unsupported manifest media type {media_type!r}")
    document = _document(content, "manifest")
    _check_header(document, media_type, required=media_type == DOCKER_MANIFEST)
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise InvalidManifest("the manifest has no layers list")
    return ParsedManifest(
        config=Descriptor.from_json(document.get("config")),
        layers=tuple(Descriptor.from_json(layer) for layer in layers),
    )


def select_platform(
    index_content: bytes,
    *,
    os: str = "linux",
    architecture: str = "amd64",
    variant: str | None = None,
) -> Descriptor:
    """The image manifest for one platform in an OCI index or a Docker manifest list.

    Without `variant`, an entry that names none is preferred over one that
    does, else the first match is taken. Entries that are not image manifests
    (nested indexes, attestations stored as `unknown/unknown`) never match.
    Raises `PlatformNotFound` listing the platforms there are, `InvalidManifest`
    for a document that is not an index.
    """
    document = _document(index_content, "index")
    declared = document.get("mediaType")
    if declared is not None and declared not in INDEXES:
        raise InvalidManifest(f"expected an image index, got a document of type {declared!r}")
    if document.get("schemaVersion") != 2:
        raise InvalidManifest("the index's schemaVersion is not 2")
    entries = document.get("manifests")
    if not isinstance(entries, list):
        raise InvalidManifest("the index has no manifests list")
    matches: list[tuple[Descriptor, str | None]] = []
    offered: list[str] = []
    for entry in entries:
        descriptor = Descriptor.from_json(entry)
        platform = entry.get("platform")
        if not isinstance(platform, dict):
            continue
        entry_variant = platform.get("variant")
        offered.append(_platform_name(platform))
        if (
            descriptor.media_type in IMAGE_MANIFESTS
            and platform.get("os") == os
            and platform.get("architecture") == architecture
            and (variant is None or entry_variant == variant)
        ):
            matches.append((descriptor, entry_variant))
    if not matches:
        wanted = _platform_name({"os": os, "architecture": architecture, "variant": variant})
        raise PlatformNotFound(
            f"the index has no image for {wanted}; it has: {', '.join(offered) or 'none'}",
            wanted=wanted,
            available=offered,
        )
    plain = [descriptor for descriptor, entry_variant in matches if entry_variant is None]
    return plain[0] if plain and variant is None else matches[0][0]


def _document(content: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidManifest(f"the {what} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidManifest(f"the {what} must be a JSON object, got {_kind(document)}")
    return document


def _check_header(document: dict[str, Any], media_type: str, *, required: bool) -> None:
    if document.get("schemaVersion") != 2:
        raise InvalidManifest(
            f"the manifest's schemaVersion is {document.get('schemaVersion')!r}, not 2"
        )
    declared = document.get("mediaType")
    # OCI makes the field optional; when present it must agree with how the
    # registry served the manifest, or the two could be read differently.
    if (declared is None and required) or (declared is not None and declared != media_type):
        raise InvalidManifest(f"the manifest says mediaType {declared!r}, served as {media_type}")


def _platform_name(platform: Mapping[str, Any]) -> str:
    name = f"{platform.get('os')}/{platform.get('architecture')}"
    return f"{name}/{platform['variant']}" if platform.get("variant") else name


def _is_string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _kind(value: Any) -> str:
    return type(value).__name__
