"""Runs one build's pipeline in this process (no database), for measuring its memory.

`python build_child.py '<json>'` with registry_url, artifact_uri, sha256, size, data_dir;
prints one JSON line: the digest, bytes uploaded and the seconds the layer took.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from mlplane_builder.domain import Build, BuildRequest, BuildStatus
from mlplane_builder.runner import BuildRunner
from mlplane_builder.settings import BuilderSettings


async def main(arguments: dict[str, object]) -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    request = BuildRequest(
        team="mem",
        model="big",
        version=1,
        framework="pytorch",
        artifact_uri=str(arguments["artifact_uri"]),
        artifact_sha256=str(arguments["sha256"]),
        artifact_size=int(str(arguments["size"])),
        git_repository="https://git.example.com/ml/big",
        commit_sha="c" * 40,
        ci_run_url="https://ci.example.com/runs/1",
        registered_at=now,
    )
    build = Build(
        id=1,
        request=request,
        status=BuildStatus.RUNNING,
        attempts=1,
        created_at=now,
        updated_at=now,
    )
    data_dir = Path(str(arguments["data_dir"]))
    settings = BuilderSettings(
        registry_url=str(arguments["registry_url"]),  # type: ignore[arg-type]
        local_artifact_root=str(data_dir),
    )
    started = time.monotonic()
    async with BuildRunner(settings, data_dir=data_dir, platform_data_dir=data_dir) as runner:
        result = await runner(build)
    print(
        json.dumps(
            {
                "digest": result.outcome.digest,
                "bytes_uploaded": result.outcome.bytes_uploaded,
                "artifact_seconds": result.artifact_seconds,
                "total_seconds": time.monotonic() - started,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
