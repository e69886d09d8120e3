"""Test images and the test database pushed to a real registry with the shared OCI client.

The registry is `mlplane_runtime.testing.oci_registry`'s (`oci_registry` fixture).
"""

from __future__ import annotations

from mlplane_runtime.oci import OciClient
from mlplane_runtime.testing.oci_registry import OciRegistryEndpoint

from .oci_image import OciImage


async def push_image(
    registry: OciRegistryEndpoint, repository: str, tag: str, image: OciImage
) -> str:
    """Push `image` as `repository:tag`; returns its reference by digest (`host/repo@sha256:…`)."""
    async with OciClient(registry.url) as client:
        for blob in image.blobs():
            await client.push_blob(repository, blob.data)
        await client.put_manifest(repository, tag, image.manifest.data, image.manifest.media_type)
    return f"{registry.host}/{repository}@{image.digest}"
