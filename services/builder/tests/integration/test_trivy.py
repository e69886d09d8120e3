"""Trivy (the scanner's engine, from the pinned wheel) reads a pushed image from the real
registry: its layers (the base's and ours), our labels, and a file inside the model layer."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from mlplane_builder.domain import BuildStatus
from mlplane_builder.store import BuilderTables
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.oci_registry import OciRegistryEndpoint

from ..conftest import registered
from .builds import builder, deliver_to, run_until_finished, settings
from .conftest import UploadArtifact

TRIVY = Path(sys.executable).parent / "trivy"
# A GitHub token's shape (not a real one): Trivy's secret rules must find it in our layer.
LEAKED = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


async def trivy(reference: str, cache: Path) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        str(TRIVY),
        "image",
        "--image-src",
        "remote",
        "--scanners",
        "secret",
        "--format",
        "json",
        "--quiet",
        "--skip-db-update",
        "--cache-dir",
        str(cache),
        reference,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TRIVY_INSECURE": "true", "TRIVY_NO_PROGRESS": "true"},
    )
    async with asyncio.timeout(120):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]
    report = json.loads(out)
    assert isinstance(report, dict)
    return report


async def test_trivy_reads_the_pushed_image(
    uow_factory: UnitOfWorkFactory,
    tables: BuilderTables,
    team: str,
    oci_registry: OciRegistryEndpoint,
    base_image: str,
    upload_artifact: UploadArtifact,
    s3_settings: dict[str, Any],
    tmp_path: Path,
) -> None:
    content = json.dumps({"weights": [0.1, 0.2], "note": f"token={LEAKED}"}).encode()
    artifact = await upload_artifact(content, "model.json")
    await deliver_to(
        uow_factory,
        tables,
        registered(team, uri=artifact.uri, sha256=artifact.sha256, size=artifact.size),
    )
    config = settings(
        registry_url=oci_registry.url, base_images={"sklearn": base_image}, **s3_settings
    )
    async with builder(uow_factory, tables, config, tmp_path) as (_, worker):
        build = await run_until_finished(worker)
    assert build.status is BuildStatus.SUCCEEDED, build.error
    reference = f"{build.image_repository}@{build.image_digest}"

    report = await trivy(reference, tmp_path / "trivy-cache")

    metadata = report["Metadata"]
    assert len(metadata["DiffIDs"]) == 3
    labels = metadata["ImageConfig"]["config"]["Labels"]
    assert labels["io.mlplane.artifact-sha256"] == artifact.sha256
    assert labels["org.opencontainers.image.revision"] == "c" * 40
    assert reference in metadata.get("RepoDigests", [reference])
    found = [
        (result["Target"], secret["RuleID"])
        for result in report.get("Results", [])
        for secret in result.get("Secrets", [])
    ]
    assert ("/models/fraud/1/model.json", "github-pat") in found
