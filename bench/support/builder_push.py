"""One measured push, run as its own process so its peak RSS is its own.

    python -m bench.support.builder_push {mlplane,raw} FILE REGISTRY_URL CHUNK_SIZE

`mlplane`: the file streamed through the builder's `LayerStream` (tar + gzip,
digest and diff-id) into `OciClient.push_blob_stream`. `raw`: the same file's bytes
into `push_blob_stream` as they are. Both read the file with the same reader.
Prints "ready", waits for "go" on stdin (so the parent samples memory from the
start), then prints one JSON line with its figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

from mlplane_builder.image.layer import LayerFile, LayerStream
from mlplane_oci import OciClient

READ_SIZE = 4 * 2**20


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    """The file in READ_SIZE pieces, each read in a thread so the loop keeps uploading."""
    with path.open("rb", buffering=0) as source:
        while chunk := await asyncio.to_thread(source.read, READ_SIZE):
            yield chunk


async def push(
    mode: str, path: Path, size: int, registry: str, chunk_size: int
) -> dict[str, object]:
    repository = f"mlplane-bench/builder-{mode}-{uuid4().hex[:10]}"
    async with OciClient(registry, timeout_s=300) as client:
        began = time.perf_counter()
        if mode == "mlplane":
            layer = LayerStream(LayerFile("/models/bench/1/model.bin", size), file_chunks(path))
            pushed = await client.push_blob_stream(repository, layer, chunk_size=chunk_size)
            if pushed.digest != layer.result.digest:
                raise RuntimeError(f"pushed {pushed.digest}, layer is {layer.result.digest}")
        else:
            pushed = await client.push_blob_stream(
                repository, file_chunks(path), chunk_size=chunk_size
            )
        seconds = time.perf_counter() - began
        stored = await client.blob_size(repository, pushed.digest)
        if stored != pushed.size:
            raise RuntimeError(
                f"registry holds {stored} bytes of {pushed.digest}, pushed {pushed.size}"
            )
        return {
            "seconds": seconds,
            "artifact_bytes": size,
            "uploaded_bytes": client.stats.bytes_uploaded,
            "patches": client.stats.count("PATCH", "blob-upload"),
            "retries": client.stats.retries,
            "cpu_s": sum(os.times()[:2]),
        }


def main() -> None:
    mode, path, registry, chunk_size = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    if mode not in ("mlplane", "raw"):
        raise SystemExit(f"mode must be mlplane or raw, not {mode!r}")
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("parent did not say go")
    figures = asyncio.run(push(mode, path, path.stat().st_size, registry, chunk_size))
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
