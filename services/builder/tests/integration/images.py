"""Test images built with the builder's own image pieces, and reading images back."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import AsyncIterator
from typing import Any

from mlplane_builder.image.config import derive_config
from mlplane_builder.image.layer import BuiltLayer, LayerFile, LayerStream
from mlplane_builder.image.manifest import Descriptor, digest_of, image_manifest
from mlplane_oci import OciClient
from mlplane_oci.media_types import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST

OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
OS_RELEASE += b'VERSION_ID="12"\nVERSION="12 (bookworm)"\nID=debian\n'
SERVE_SCRIPT = b"#!/bin/sh\necho serving $MODEL_NAME from $MODEL_PATH\n"


async def _one(content: bytes) -> AsyncIterator[bytes]:
    yield content


async def layer_of(path: str, content: bytes, mode: int = 0o644) -> tuple[bytes, BuiltLayer]:
    stream = LayerStream(LayerFile(path, len(content), mode), _one(content))
    data = b"".join([chunk async for chunk in stream])
    return data, stream.result


async def push_base_image(client: OciClient, repository: str, *, flavour: bytes = b"") -> str:
    """Push a small base serving image (os-release + a script); its manifest digest.

    `flavour` goes into the script: another flavour is another image."""
    config: dict[str, Any] | None = None
    descriptors = []
    for path, content, mode in (
        ("/etc/os-release", OS_RELEASE, 0o644),
        ("/usr/local/bin/serve", SERVE_SCRIPT + flavour, 0o755),
    ):
        data, layer = await layer_of(path, content, mode)
        await client.push_blob(repository, data)
        config = json.loads(
            derive_config(
                config,
                diff_id=layer.diff_id,
                env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
                labels={"org.opencontainers.image.title": "mlplane test base"},
                history_comment=f"add {path}",
            )
        )
        descriptors.append(
            Descriptor(media_type=OCI_LAYER_GZIP, digest=layer.digest, size=len(data))
        )
    config_bytes = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
    await client.push_blob(repository, config_bytes)
    manifest = image_manifest(
        Descriptor(media_type=OCI_CONFIG, digest=digest_of(config_bytes), size=len(config_bytes)),
        descriptors,
    )
    return await client.put_manifest(repository, "1.0", manifest, OCI_MANIFEST)


def read_tar_layer(data: bytes) -> dict[str, tuple[bytes, int]]:
    """The regular files of a gzip tar layer: path -> (content, mode)."""
    files: dict[str, tuple[bytes, int]] = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r:") as archive:
        for member in archive.getmembers():
            if member.isfile():
                handle = archive.extractfile(member)
                assert handle is not None
                files["/" + member.name.lstrip("/")] = (handle.read(), member.mode)
    return files
