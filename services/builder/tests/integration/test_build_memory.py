"""A 512 MiB artifact builds in constant memory: the build runs in a child process whose
resident set is sampled with psutil all along; its peak must stay under 200 MiB."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from mlplane_oci import OciClient
from mlplane_testing.oci_registry import DistributionRegistry

CHILD = Path(__file__).with_name("build_child.py")
SIZE = 512 * 1024 * 1024
PEAK_LIMIT = 200 * 1024 * 1024
MIB = 1024 * 1024


@pytest.fixture
def own_registry() -> Iterator[DistributionRegistry]:
    """A registry of this test alone: its half gigabyte is removed with it."""
    registry = DistributionRegistry.start()
    try:
        yield registry
    finally:
        registry.stop()


def write_artifact(path: Path) -> str:
    """512 MiB of random bytes (incompressible, like weights); their sha256."""
    digest = hashlib.sha256()
    block = 8 * MIB
    with path.open("wb") as handle:
        for _ in range(SIZE // block):
            chunk = os.urandom(block)
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


def tree_rss(process: psutil.Process) -> int:
    try:
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            total += child.memory_info().rss
    except psutil.NoSuchProcess:
        return 0
    return total


async def test_a_512_mib_artifact_builds_with_peak_rss_under_200_mib(
    own_registry: DistributionRegistry, tmp_path: Path
) -> None:
    # Where the registry's store keeps team `mem`'s model `big` (build_child's request).
    artifact = tmp_path / "teams" / "mem" / "models" / "big" / "x1" / "weights.bin"
    artifact.parent.mkdir(parents=True)
    sha256 = await asyncio.to_thread(write_artifact, artifact)
    arguments = {
        "registry_url": own_registry.url,
        "artifact_uri": artifact.as_uri(),
        "sha256": sha256,
        "size": SIZE,
        "data_dir": str(tmp_path),
    }
    started = time.monotonic()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        json.dumps(arguments),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    watched = psutil.Process(child.pid)
    peak = 0
    communicate = asyncio.ensure_future(child.communicate())
    async with asyncio.timeout(600):
        while not communicate.done():
            peak = max(peak, tree_rss(watched))
            await asyncio.wait({communicate}, timeout=0.02)
    out, err = communicate.result()
    elapsed = time.monotonic() - started
    assert child.returncode == 0, err.decode(errors="replace")[-3000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    rate = SIZE / MIB / result["artifact_seconds"]
    print(
        f"\n512 MiB build: peak RSS {peak / MIB:.1f} MiB, layer streamed at {rate:.1f} MiB/s, "
        f"{result['bytes_uploaded'] / MIB:.1f} MiB uploaded, {elapsed:.1f} s in all"
    )
    assert 0 < peak < PEAK_LIMIT
    # Random bytes do not compress: nearly all of them went over the wire, once.
    assert SIZE <= result["bytes_uploaded"] < SIZE * 1.01
    async with OciClient(own_registry.url) as client:
        assert await client.manifest_digest("mlplane/mem/big", "v1") == result["digest"]
