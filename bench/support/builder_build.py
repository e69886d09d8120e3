"""One measured image build by the builder's own pipeline, as its own process.

    python -m bench.support.builder_build ROOT URI SIZE SHA256 BASE REGISTRY_URL REPOSITORY
        [LAYOUT_DIR COMPRESSION_LEVEL]

The builder's `build_image` with its defaults (compression level 1, the model layer
made in 1 MiB steps and uploaded in one streamed PATCH): resolve the base image in
the registry, mount its layers into the target repository, stream the artifact (a
`file://` URI under ROOT, read and checked as the builder reads it) into the model
layer while it uploads, then config and manifest.
Prints "ready", waits for "go" on stdin (so the parent samples memory from the
start), then prints one JSON line with its figures. With LAYOUT_DIR the image goes
into that OCI image layout instead of the registry (the base still comes from it),
at COMPRESSION_LEVEL: skopeo's input, whose model layer then differs in its gzip
bytes (so its digest is not already in the registry) but not in size or content.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from mlplane_builder.artifact_source import ArtifactSource
from mlplane_builder.domain import BuildRequest
from mlplane_builder.image.layout import OciLayout
from mlplane_builder.pipeline import BuildPlan, build_image
from mlplane_builder.settings import BuilderSettings
from mlplane_builder.targets import ImageTarget, LayoutTarget, RegistryTarget
from mlplane_oci import OciClient


async def build(
    root: Path,
    uri: str,
    size: int,
    sha256: str,
    base: str,
    registry: str,
    repository: str,
    layout: Path | None = None,
    compression_level: int | None = None,
) -> dict[str, object]:
    defaults = BuilderSettings()
    host = urlsplit(registry).netloc
    request = BuildRequest(
        team="bench",
        model="bench",
        version=1,
        framework="default",
        artifact_uri=uri,
        artifact_sha256=sha256,
        artifact_size=size,
        git_repository="https://git.example.com/bench/model",
        commit_sha="0" * 40,
        ci_run_url="https://ci.example.com/bench/1",
        registered_at=datetime.now(UTC),
    )
    async with (
        OciClient(registry, timeout_s=300) as client,
        ArtifactSource(local_root=root) as artifacts,
    ):

        async def base_client_for(_: str) -> OciClient:
            return client

        target: ImageTarget = (
            RegistryTarget(client, host, repository)
            if layout is None
            else LayoutTarget(OciLayout(layout), repository)
        )
        plan = BuildPlan(
            target=target,
            target_registry=host if layout is None else None,
            base_reference=base,
            compression_level=compression_level or defaults.compression_level,
            chunk_size=defaults.upload_chunk_size,
            stream_upload=defaults.stream_uploads,
            layer_chunk_size=defaults.layer_chunk_size,
        )
        began = time.perf_counter()
        result = await build_image(
            request, plan, artifacts=artifacts, base_client_for=base_client_for
        )
        seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "artifact_bytes": size,
        "digest": result.outcome.digest,
        "tag": result.outcome.tag,
        "uploaded_bytes": result.outcome.bytes_uploaded,
        "cpu_s": sum(os.times()[:2]),
    }


def main() -> None:
    root, uri, size, sha256, base, registry, repository = sys.argv[1:8]
    layout = Path(sys.argv[8]) if len(sys.argv) > 8 else None
    level = int(sys.argv[9]) if len(sys.argv) > 9 else None
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("parent did not say go")
    figures = asyncio.run(
        build(Path(root), uri, int(size), sha256, base, registry, repository, layout, level)
    )
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
