"""The deployer benchmark's baseline and its profile of where mlplane's time goes.

- `plain_git_pushes`: the same rendered files written to a clone and pushed by plain
  `git` (add, commit, push: one commit per model and environment, one after another),
  the least any tool landing one commit per deployment must do;
- `GitProfile`: counts and times each git subcommand the deployer runs, and the
  rendering and validation, by wrapping them for the run (bench only).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlplane_deployer import worker as worker_module
from mlplane_deployer.domain.environments import ServingKind
from mlplane_deployer.gitops.git import Git
from mlplane_deployer.render import render_validated
from mlplane_deployer.render.spec import ImageByDigest, RenderSpec, Workload

from .deployer_hosting import REPOSITORY, TEAM, bare_repository, digest_of, git

RenderedPair = tuple[str, dict[str, bytes]]
"""(directory, files by path) of one model and environment."""


def rendered_pairs(pairs: Sequence[tuple[str, str]]) -> list[RenderedPair]:
    """What the deployer commits for each pair: the same spec, so the same bytes."""
    out: list[RenderedPair] = []
    for model, environment in pairs:
        spec = RenderSpec(
            team=TEAM,
            model=model,
            environment=environment,
            workload=Workload(1, ImageByDigest(REPOSITORY, digest_of(model))),
            serving=ServingKind.KUSTOMIZE,
        )
        tree = render_validated(spec)
        out.append((tree.directory, tree.files))
    return out


def plain_git_pushes(rendered: Sequence[RenderedPair], workdir: Path) -> float:
    """Seconds to write, add, commit and push each pair's files, one commit each, to a
    fresh bare remote (the clone is made before timing)."""
    remote = bare_repository(workdir / "plain.git")
    clone = workdir / "plain-clone"
    git(workdir, "clone", "--quiet", str(remote), str(clone))
    git(clone, "config", "user.email", "bench@mlplane.local")
    git(clone, "config", "user.name", "bench")
    git(clone, "checkout", "--quiet", "-b", "main")
    started = time.perf_counter()
    for directory, files in rendered:
        target = clone / directory
        if target.exists():
            shutil.rmtree(target)
        for path, content in files.items():
            file = clone / path
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(content)
        git(clone, "add", "--all", "--", directory)
        git(clone, "commit", "--quiet", "-m", f"deploy {directory}")
        git(clone, "push", "--quiet", "origin", "HEAD:refs/heads/main")
    elapsed = time.perf_counter() - started
    count = int(git(remote, "rev-list", "--count", "main").strip())
    if count != len(rendered):
        raise RuntimeError(f"plain git pushed {count} commits, not {len(rendered)}")
    return elapsed


class GitProfile:
    """Seconds and calls per git subcommand, and for render + validate, during a run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    @contextmanager
    def recording(self) -> Iterator[GitProfile]:
        original_run = Git.run
        original_render = worker_module.render_validated  # type: ignore[attr-defined]
        profile = self

        async def timed_run(git_: Git, *args: str, **kwargs: Any) -> str:
            began = time.perf_counter()
            try:
                return await original_run(git_, *args, **kwargs)
            finally:
                name = f"git {args[0]}" if args else "git"
                profile.seconds[name] += time.perf_counter() - began
                profile.calls[name] += 1

        def timed_render(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original_render(*args, **kwargs)
            finally:
                profile.seconds["render + validate (thread)"] += time.perf_counter() - began
                profile.calls["render + validate (thread)"] += 1

        Git.run = timed_run  # type: ignore[method-assign,assignment]
        worker_module.render_validated = timed_render  # type: ignore[attr-defined]
        try:
            yield self
        finally:
            Git.run = original_run  # type: ignore[method-assign]
            worker_module.render_validated = original_render  # type: ignore[attr-defined]

    def summary(self, deployments: int) -> dict[str, Any]:
        """Per deployment: milliseconds and calls of each step, largest first."""
        steps = sorted(self.seconds, key=lambda k: -self.seconds[k])
        return {
            step: {
                "ms_per_deployment": round(self.seconds[step] * 1000 / deployments, 2),
                "calls_per_deployment": round(self.calls[step] / deployments, 2),
            }
            for step in steps
        }


def git_version() -> str:
    return subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip()
