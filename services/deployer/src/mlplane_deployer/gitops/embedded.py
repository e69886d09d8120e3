"""The embedded GitOps remote: a bare repository under the data directory, made once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mlplane_deployer.gitops.git import GitFailed


async def ensure_bare_repository(path: Path, branch: str) -> None:
    """Create a bare repository at `path` (its HEAD on `branch`) unless one is there.

    Raises GitFailed when git cannot create it.
    """
    if (path / "HEAD").exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        "git",
        "init",
        "--quiet",
        "--bare",
        "--initial-branch",
        branch,
        str(path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise GitFailed("init --bare", process.returncode or 1, stderr.decode(errors="replace"))
