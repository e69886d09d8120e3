"""Does the deployer's Argo CD Application watch keep up with many Applications changing
status? Measured against the Kubernetes API stand-in of `mlplane_testing.kube_api` (no
API server can run here), as `services/deployer/tests/argocd/test_many_applications.py`
does: N Applications are ensured through the deployer's client (server-side apply), the
stand-in's Argo CD controller moves each from what a real git repository holds
(`syncing`, then `healthy`), and the deployer's watch + phase follower must see every
change of every Application, in order.

Reported: how long the ensures took, how long from the controller's start until the
follower had seen every Application healthy, phase changes per second the watch
delivered, and whether each Application was seen exactly `syncing` → `healthy` in
resourceVersion order (`kept_up`).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from mlplane_contracts.events import DeploymentPhase
from mlplane_deployer.argocd.client import ArgoCdApplications, Backoff
from mlplane_deployer.argocd.connection import kube_api_client
from mlplane_deployer.argocd.follow import ApplicationPhaseChange, PhaseFollower, follow_phases
from mlplane_deployer.argocd.watch import ApplicationWatch
from mlplane_testing.kube_api import KubeApiStandIn

OVERLAY = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
BACKOFF = Backoff(attempts=1_000, first_s=0.01, max_s=0.05)
ENSURE_CONCURRENCY = 16


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()


def _commit_overlays(repo: Path, names: list[str]) -> str:
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "bench@mlplane.local")
    _git(repo, "config", "user.name", "bench")
    for name in names:
        target = repo / "envs" / "prod" / name / "kustomization.yaml"
        target.parent.mkdir(parents=True)
        target.write_text(OVERLAY)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "overlays")
    return _git(repo, "rev-parse", "HEAD")


def _application(name: str, repo: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": "mlplane-deployer"},
        },
        "spec": {
            "project": "default",
            "source": {"repoURL": repo, "targetRevision": "main", "path": f"envs/prod/{name}"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "models"},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }


async def watch_many(count: int, workdir: Path, bound_s: float) -> dict[str, Any]:
    """The figures of one run with `count` Applications (see the module)."""
    names = [f"m{i}-{uuid.uuid4().hex[:6]}" for i in range(count)]
    repo = workdir / "argocd-gitops"
    sha = _commit_overlays(repo, names)
    namespace = f"argocd-{uuid.uuid4().hex[:6]}"
    follower = PhaseFollower()
    for name in names:
        follower.track(name, revision=sha, timeout_s=bound_s)
    changes: list[ApplicationPhaseChange] = []
    async with KubeApiStandIn().serve() as kube:
        api = await kube_api_client(host=kube.url)
        try:
            applications = ArgoCdApplications(api, namespace=namespace, backoff=BACKOFF)
            gate = asyncio.Semaphore(ENSURE_CONCURRENCY)

            async def ensure(name: str) -> None:
                async with gate:
                    await applications.ensure_application(_application(name, str(repo)))

            began = time.perf_counter()
            await asyncio.gather(*(ensure(n) for n in names))
            ensured_s = time.perf_counter() - began
            watch = ApplicationWatch(api, namespace=namespace, backoff=BACKOFF, watch_timeout_s=30)

            async def pump() -> None:
                async for change in follow_phases(watch, follower):
                    if isinstance(change, ApplicationPhaseChange):
                        changes.append(change)

            task = asyncio.create_task(pump())
            try:
                async with kube.argocd(interval_s=0.05).running():
                    began = time.perf_counter()
                    async with asyncio.timeout(bound_s):
                        while (  # noqa: ASYNC110 (the follower's state has no event)
                            sum(1 for n in names if follower.phase(n) is DeploymentPhase.HEALTHY)
                            < count
                        ):
                            await asyncio.sleep(0.01)
                    all_healthy_s = time.perf_counter() - began
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await api.close()
    seen: dict[str, list[tuple[int, DeploymentPhase]]] = defaultdict(list)
    for change in changes:
        seen[change.application].append((int(change.resource_version or 0), change.change.phase))
    in_order = all(
        [phase for _, phase in seen[n]] == [DeploymentPhase.SYNCING, DeploymentPhase.HEALTHY]
        and [rv for rv, _ in seen[n]] == sorted(rv for rv, _ in seen[n])
        for n in names
    )
    return {
        "applications": count,
        "ensure_s": round(ensured_s, 3),
        "ensures_per_s": round(count / ensured_s, 1),
        "all_healthy_after_s": round(all_healthy_s, 3),
        "phase_changes_seen": len(changes),
        "phase_changes_per_s": round(len(changes) / all_healthy_s, 1),
        "controller_interval_s": 0.05,
        "kept_up": in_order and len(changes) == 2 * count,
    }
