"""A tiny Argo CD application controller: moves each Application's status as Argo CD does.

From what is in the GitOps repository (a local git repository; `repos` maps an
Application's `spec.source.repoURL` to its path, and a plain path or `file://` URL
works as is): one step per tick, as Argo CD's auto-sync shows them:

    new revision    sync OutOfSync (health Missing on a first sync)
    sync starts     operationState Running
    sync done       operationState Succeeded, sync Synced, health Progressing
    rolled out      health Healthy, or Degraded when a manifest is flagged

A revision or path that does not exist is a `ComparisonError` with sync Unknown. The
flags, in any file under the path or a directory its `kustomization.yaml` lists in
`resources` (`../base`, as Argo CD builds it): `stand-in.mlplane.io/health: Degraded`
(rolls out Degraded) and `stand-in.mlplane.io/sync: Failed` (the sync operation
fails). A test can also name `degraded_markers` (an image digest standing for a
broken image): any file holding one rolls out Degraded.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mlplane_testing.kube_api.store import ApplicationStore, Object, now

MANAGER = "argocd-application-controller"
_DEGRADED = re.compile(r"stand-in\.mlplane\.io/health:\s*[\"']?Degraded")
_SYNC_FAILS = re.compile(r"stand-in\.mlplane\.io/sync:\s*[\"']?Failed")


@dataclass(frozen=True, slots=True)
class Target:
    """What the repository says for one Application: a commit, or why there is none."""

    revision: str | None
    error: str | None = None
    degraded: bool = False
    sync_fails: bool = False


async def _git(repo: Path, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "git",
        "-C",
        str(repo),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


def next_status(status: Object, target: Target) -> Object | None:
    """The status one controller step after `status`, or None when it is settled."""
    sync = status.get("sync") or {}
    health = (status.get("health") or {}).get("status")
    operation = status.get("operationState") or {}
    op_revision = ((operation.get("operation") or {}).get("sync") or {}).get("revision")
    if target.revision is None:
        condition = {
            "type": "ComparisonError",
            "message": target.error,
            "lastTransitionTime": now(),
        }
        if (
            sync.get("status") == "Unknown"
            and status.get("conditions", [{}])[0].get("message") == target.error
        ):
            return None
        return {
            **status,
            "sync": {"status": "Unknown"},
            "health": {"status": health or "Unknown"},
            "conditions": [condition],
        }
    sha = target.revision
    if sync.get("revision") != sha or sync.get("status") in (None, "Unknown"):
        return {
            **{k: v for k, v in status.items() if k != "conditions"},
            "sync": {"status": "OutOfSync", "revision": sha},
            "health": {"status": "Missing" if health in (None, "Unknown") else health},
            "reconciledAt": now(),
        }
    if sync.get("status") == "OutOfSync" and op_revision != sha:
        return {
            **status,
            "operationState": {
                "phase": "Running",
                "message": "one or more tasks are running",
                "operation": {"sync": {"revision": sha}},
                "startedAt": now(),
            },
        }
    if operation.get("phase") == "Running":
        done = {**operation, "finishedAt": now()}
        if target.sync_fails:
            return {
                **status,
                "operationState": {
                    **done,
                    "phase": "Failed",
                    "message": "one or more objects failed to apply (flagged in the repository)",
                },
            }
        return {
            **status,
            "sync": {"status": "Synced", "revision": sha},
            "health": {"status": "Progressing"},
            "operationState": {
                **done,
                "phase": "Succeeded",
                "message": "successfully synced (all tasks run)",
                "syncResult": {"revision": sha},
            },
        }
    if sync.get("status") == "Synced" and health == "Progressing":
        if target.degraded:
            message = "Deployment has exceeded its progress deadline (flagged in the repository)"
            return {**status, "health": {"status": "Degraded", "message": message}}
        return {**status, "health": {"status": "Healthy"}}
    return None


def _kustomize_resources(text: str) -> list[str]:
    """The entries of a kustomization's top-level `resources:` list (block style)."""
    found: list[str] = []
    inside = False
    for line in text.splitlines():
        if not line.startswith((" ", "-")):
            inside = line.strip() == "resources:"
            continue
        item = line.strip()
        if inside and item.startswith("- "):
            found.append(item[2:].strip().strip("'\""))
    return found


def _joined(directory: PurePosixPath, resource: str) -> str | None:
    """`resource` relative to `directory`, normalized; None when it leaves the repository."""
    parts: list[str] = []
    for part in (*directory.parts, *PurePosixPath(resource).parts):
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts) or None


class ArgoCdController:
    """Reconciles every Application in the store, one status step per tick."""

    def __init__(
        self,
        store: ApplicationStore,
        *,
        repos: Mapping[str, Path] | None = None,
        interval_s: float = 0.02,
        degraded_markers: Iterable[str] = (),
    ) -> None:
        self._store = store
        self._repos = dict(repos or {})
        self._interval_s = interval_s
        self._verdicts: dict[tuple[Path, str, str], Target] = {}
        self.degraded_markers: set[str] = set(degraded_markers)
        """Text that makes a rollout Degraded wherever it appears (add before committing)."""

    def _repository(self, url: str) -> Path | None:
        if url in self._repos:
            return self._repos[url]
        path = Path(url.removeprefix("file://"))
        return path if path.is_absolute() and path.exists() else None

    async def _target(
        self, source: Object, revisions: dict[tuple[Path, str], str | None]
    ) -> Target:
        repo = self._repository(str(source.get("repoURL", "")))
        if repo is None:
            return Target(None, f"repository not accessible: {source.get('repoURL')}")
        ref = str(source.get("targetRevision") or "HEAD")
        if (repo, ref) not in revisions:
            code, out = await _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
            revisions[(repo, ref)] = out.strip() if code == 0 else None
        sha = revisions[(repo, ref)]
        if sha is None:
            return Target(None, f"Unable to resolve '{ref}' to a commit SHA")
        path = str(source.get("path") or ".").strip("/")
        key = (repo, sha, path)
        if key not in self._verdicts:
            self._verdicts[key] = await self._inspect(repo, sha, path)
        return self._verdicts[key]

    async def _inspect(self, repo: Path, sha: str, path: str) -> Target:
        code, out = await _git(repo, "ls-tree", "-r", "--name-only", sha, "--", path)
        files = [line for line in out.splitlines() if line]
        if code != 0 or not files:
            return Target(None, f"{path}: app path does not exist")
        texts = await self._texts(repo, sha, files, seen={path})
        markers = tuple(self.degraded_markers)
        return Target(
            sha,
            degraded=any(
                _DEGRADED.search(text) or any(m in text for m in markers) for text in texts
            ),
            sync_fails=any(_SYNC_FAILS.search(text) for text in texts),
        )

    async def _texts(self, repo: Path, sha: str, files: list[str], seen: set[str]) -> list[str]:
        """The files' texts, and those of the directories their kustomizations include."""
        texts = []
        for name in files:
            text = (await _git(repo, "show", f"{sha}:{name}"))[1]
            texts.append(text)
            if PurePosixPath(name).name != "kustomization.yaml":
                continue
            for resource in _kustomize_resources(text):
                included = _joined(PurePosixPath(name).parent, resource)
                if included is None or included in seen:
                    continue
                seen.add(included)
                _, out = await _git(repo, "ls-tree", "-r", "--name-only", sha, "--", included)
                more = [line for line in out.splitlines() if line]
                texts.extend(await self._texts(repo, sha, more, seen))
        return texts

    async def reconcile_once(self, namespace: str | None = None) -> int:
        """One step for every Application (in `namespace`, or all); returns how many moved."""
        moved = 0
        revisions: dict[tuple[Path, str], str | None] = {}
        for obj in self._store.all():
            meta = obj["metadata"]
            if namespace is not None and meta["namespace"] != namespace:
                continue
            if "deletionTimestamp" in meta:
                # Argo CD deletes what the Application deployed, then lets it go.
                self._store.remove_finalizers(meta["namespace"], meta["name"], MANAGER)
                moved += 1
                continue
            target = await self._target((obj.get("spec") or {}).get("source") or {}, revisions)
            status = next_status(obj.get("status") or {}, target)
            if status is not None:
                with contextlib.suppress(Exception):  # deleted meanwhile
                    self._store.write_status(meta["namespace"], meta["name"], status, MANAGER)
                    moved += 1
        return moved

    async def run(self) -> None:
        while True:
            await self.reconcile_once()
            await asyncio.sleep(self._interval_s)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ArgoCdController]:
        """The controller reconciling in the background for the duration of the block."""
        task = asyncio.create_task(self.run())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
