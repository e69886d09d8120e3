"""The watch keeps up with 500 Applications changing status (bounded in count and time)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

from kubernetes_asyncio.client import ApiClient
from mlplane_contracts.events import DeploymentPhase as P
from mlplane_deployer.argocd.client import ArgoCdApplications
from mlplane_deployer.argocd.follow import ApplicationPhaseChange, PhaseFollower, follow_phases
from mlplane_testing.kube_api import KubeApiStandIn

from .conftest import GitOpsRepo, manifest, unique
from .test_watch import OVERLAY, collecting, until, watch_of

COUNT = 500
BOUND_S = 90.0


async def test_500_applications_reach_healthy_each_in_order(
    applications: ArgoCdApplications,
    api: ApiClient,
    kube: KubeApiStandIn,
    namespace: str,
    gitops: GitOpsRepo,
) -> None:
    names = [unique(f"m{i}") for i in range(COUNT)]
    sha = gitops.commit({f"envs/prod/{n}/kustomization.yaml": OVERLAY for n in names})
    follower = PhaseFollower()
    for name in names:
        follower.track(name, revision=sha, timeout_s=BOUND_S)
    gate = asyncio.Semaphore(16)

    async def ensure(name: str) -> None:
        async with gate:
            await applications.ensure_application(
                manifest(name, str(gitops.path), f"envs/prod/{name}")
            )

    started = time.monotonic()
    await asyncio.gather(*(ensure(n) for n in names))
    async with (
        collecting(follow_phases(watch_of(api, namespace), follower)) as changes,
        kube.argocd(interval_s=0.05).running(),
    ):
        await until(
            lambda: sum(1 for n in names if follower.phase(n) is P.HEALTHY) == COUNT,
            timeout_s=BOUND_S,
        )
    elapsed = time.monotonic() - started

    per_application: dict[str, list[tuple[int, P]]] = defaultdict(list)
    for change in changes:
        assert isinstance(change, ApplicationPhaseChange)
        per_application[change.application].append(
            (int(change.resource_version or 0), change.change.phase)
        )
    assert set(per_application) == set(names)
    for name in names:
        seen = per_application[name]
        assert [phase for _, phase in seen] == [P.SYNCING, P.HEALTHY], name
        assert [rv for rv, _ in seen] == sorted(rv for rv, _ in seen), name
    assert len(changes) == 2 * COUNT
    assert elapsed < BOUND_S
