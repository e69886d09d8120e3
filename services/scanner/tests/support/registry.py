"""Test images and the test database pushed to a real registry with the shared OCI client.

The registry is `mlplane_testing.oci_registry`'s (`oci_registry` fixture).
"""

from __future__ import annotations

from pathlib import Path

from mlplane_oci import OciClient
from mlplane_testing.oci_registry import OciRegistryEndpoint

from .oci_image import OciImage
from .trivy_db import DB_SCHEMA_VERSION, db_artifact


async def push_image(
    registry: OciRegistryEndpoint, repository: str, tag: str, image: OciImage
) -> str:
    """Push `image` as `repository:tag`; returns its reference by digest (`host/repo@sha256:…`)."""
    async with OciClient(registry.url) as client:
        for blob in image.blobs():
            await client.push_blob(repository, blob.data)
        await client.put_manifest(repository, tag, image.manifest.data, image.manifest.media_type)
    return f"{registry.host}/{repository}@{image.digest}"


async def push_trivy_db(registry: OciRegistryEndpoint, repository: str, db_dir: Path) -> str:
    """Push the DB in `db_dir` under the tag Trivy asks for; returns the `--db-repository` value."""
    await push_image(registry, repository, str(DB_SCHEMA_VERSION), db_artifact(db_dir))
    return f"{registry.host}/{repository}"
