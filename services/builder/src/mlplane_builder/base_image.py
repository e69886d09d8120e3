"""The base serving image of a build, resolved from its pinned reference.

An index (multi-platform image) is narrowed to its linux/amd64 manifest; the
config blob is read because the new config extends it. Nothing is downloaded
but the manifest and the config: layers are mounted or copied later, on demand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlplane_oci import OciClient
from mlplane_oci.errors import BlobNotFound, InvalidReference, ManifestNotFound
from mlplane_oci.reference import ImageReference

from mlplane_builder.domain import failures
from mlplane_builder.image.errors import InvalidManifest, PlatformNotFound
from mlplane_builder.image.manifest import Descriptor, parse_image_manifest, select_platform


@dataclass(frozen=True, slots=True)
class BaseImage:
    """A resolved base image: where it is, its platform manifest, config and layers."""

    reference: ImageReference
    """Pinned to the digest of the platform manifest actually used."""
    configured: str
    """The reference as configured (may name an index)."""
    config: dict[str, Any]
    layers: tuple[Descriptor, ...]

    @property
    def pinned(self) -> str:
        """`host/repo@sha256:...` of the platform manifest the image is built on."""
        return f"{self.reference.registry}/{self.reference.repository}@{self.reference.digest}"


async def resolve_base_image(client: OciClient, configured: str, framework: str) -> BaseImage:
    """The base image `configured` names, read through `client` (its registry's).

    Raises `BuildFailure`: base_image_missing (no such manifest or config),
    base_image_invalid (not an image, no linux/amd64 in an index); OCI errors of the
    registry itself (unavailable, auth) propagate for the caller to sort.
    """
    try:
        reference = ImageReference.parse(configured)
    except InvalidReference as exc:
        raise failures.base_image_invalid(configured, exc.detail) from exc
    repository = reference.repository
    try:
        manifest = await client.get_manifest(repository, reference.reference)
        if manifest.is_index:
            chosen = select_platform(manifest.content)
            manifest = await client.get_manifest(repository, chosen.digest)
        parsed = parse_image_manifest(manifest.content, manifest.media_type)
        config = json.loads(await client.get_blob(repository, parsed.config.digest))
    except (ManifestNotFound, BlobNotFound) as exc:
        raise failures.base_image_missing(configured, framework) from exc
    except (InvalidManifest, PlatformNotFound) as exc:
        raise failures.base_image_invalid(configured, exc.detail) from exc
    except ValueError as exc:
        raise failures.base_image_invalid(configured, f"its config is not JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise failures.base_image_invalid(configured, "its config is not a JSON object")
    return BaseImage(
        reference=reference.with_digest(manifest.digest),
        configured=configured,
        config=config,
        layers=tuple(parsed.layers),
    )
