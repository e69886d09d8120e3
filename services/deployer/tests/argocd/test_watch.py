"""Watching Applications against the stand-in, its Argo CD moving status from real git."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from kubernetes_asyncio.client import ApiClient
from mlplane_contracts.events import DeploymentPhase as P
from mlplane_deployer.argocd.client import ArgoCdApplications, Backoff
from mlplane_deployer.argocd.follow import ApplicationPhaseChange, PhaseFollower, follow_phases
from mlplane_deployer.argocd.watch import ApplicationEvent, ApplicationWatch
from mlplane_testing.kube_api import KubeApiStandIn

from .conftest import GitOpsRepo, manifest, unique

QUICK = Backoff(attempts=1_000, first_s=0.01, max_s=0.05)
OVERLAY = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"


def watch_of(api: ApiClient, namespace: str) -> ApplicationWatch:
    return ApplicationWatch(api, namespace=namespace, backoff=QUICK, watch_timeout_s=30)


@contextlib.asynccontextmanager
async def collecting(
    source: AsyncIterator[ApplicationEvent] | AsyncIterator[ApplicationPhaseChange],
) -> AsyncIterator[list[object]]:
    seen: list[object] = []

    async def pump() -> None:
        async for item in source:
            seen.append(item)

    task = asyncio.create_task(pump())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], object], timeout_s: float = 10.0) -> None:
    """Poll `condition` (state another task changes) until true, bounded in time."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - the state has no event to wait on
            await asyncio.sleep(0.01)


def phases(changes: list[object], application: str) -> list[P]:
    return [
        c.change.phase
        for c in changes
        if isinstance(c, ApplicationPhaseChange) and c.application == application
    ]


class TestPhasesFromArgoCd:
    async def test_committed_overlay_goes_syncing_then_healthy(
        self,
        applications: ArgoCdApplications,
        api: ApiClient,
        kube: KubeApiStandIn,
        namespace: str,
        gitops: GitOpsRepo,
    ) -> None:
        name = unique()
        sha = gitops.commit({f"envs/dev/{name}/kustomization.yaml": OVERLAY})
        follower = PhaseFollower()
        follower.track(name, revision=sha, timeout_s=30)
        await applications.ensure_application(manifest(name, str(gitops.path), f"envs/dev/{name}"))
        async with (
            collecting(follow_phases(watch_of(api, namespace), follower)) as changes,
            kube.argocd().running(),
        ):
            await until(lambda: P.HEALTHY in phases(changes, name))
        assert phases(changes, name) == [P.SYNCING, P.HEALTHY]
        healthy = changes[-1]
        assert isinstance(healthy, ApplicationPhaseChange)
        assert healthy.revision == sha
        assert healthy.change.caused_by == "argocd"

    async def test_manifest_flagged_unhealthy_goes_degraded(
        self,
        applications: ArgoCdApplications,
        api: ApiClient,
        kube: KubeApiStandIn,
        namespace: str,
        gitops: GitOpsRepo,
    ) -> None:
        name = unique()
        sha = gitops.commit(
            {
                f"envs/dev/{name}/kustomization.yaml": OVERLAY,
                f"envs/dev/{name}/deployment.yaml": (
                    "metadata:\n  annotations:\n    stand-in.mlplane.io/health: Degraded\n"
                ),
            }
        )
        follower = PhaseFollower()
        follower.track(name, revision=sha, timeout_s=30)
        await applications.ensure_application(manifest(name, str(gitops.path), f"envs/dev/{name}"))
        async with (
            collecting(follow_phases(watch_of(api, namespace), follower)) as changes,
            kube.argocd().running(),
        ):
            await until(lambda: P.DEGRADED in phases(changes, name))
        assert phases(changes, name) == [P.SYNCING, P.DEGRADED]
        degraded = changes[-1]
        assert isinstance(degraded, ApplicationPhaseChange)
        assert "progress deadline" in (degraded.change.reason or "")

    async def test_failed_sync_goes_failed_with_the_operation_message(
        self,
        applications: ArgoCdApplications,
        api: ApiClient,
        kube: KubeApiStandIn,
        namespace: str,
        gitops: GitOpsRepo,
    ) -> None:
        name = unique()
        sha = gitops.commit(
            {
                f"envs/dev/{name}/kustomization.yaml": OVERLAY
                + "# stand-in.mlplane.io/sync: Failed\n"
            }
        )
        follower = PhaseFollower()
        follower.track(name, revision=sha, timeout_s=30)
        await applications.ensure_application(manifest(name, str(gitops.path), f"envs/dev/{name}"))
        async with (
            collecting(follow_phases(watch_of(api, namespace), follower)) as changes,
            kube.argocd().running(),
        ):
            await until(lambda: P.FAILED in phases(changes, name))
        assert phases(changes, name) == [P.SYNCING, P.FAILED]
        failed = changes[-1]
        assert isinstance(failed, ApplicationPhaseChange)
        assert "failed to apply" in (failed.change.reason or "")

    async def test_path_missing_from_the_repository_times_out_to_failed_with_the_reason(
        self,
        applications: ArgoCdApplications,
        api: ApiClient,
        kube: KubeApiStandIn,
        namespace: str,
        gitops: GitOpsRepo,
    ) -> None:
        name = unique()
        sha = gitops.commit({"envs/dev/other/kustomization.yaml": OVERLAY})
        follower = PhaseFollower()
        follower.track(name, revision=sha, timeout_s=0.5)
        await applications.ensure_application(manifest(name, str(gitops.path), f"envs/dev/{name}"))
        async with (
            collecting(follow_phases(watch_of(api, namespace), follower)) as changes,
            kube.argocd().running(),
        ):
            await until(lambda: P.FAILED in phases(changes, name))
        assert phases(changes, name) == [P.FAILED]
        failed = changes[-1]
        assert isinstance(failed, ApplicationPhaseChange)
        reason = failed.change.reason or ""
        assert "not healthy within 0.5s" in reason
        assert "app path does not exist" in reason


class TestWatchResumes:
    async def test_dropped_watch_resumes_from_its_resource_version(
        self, applications: ArgoCdApplications, api: ApiClient, kube: KubeApiStandIn, namespace: str
    ) -> None:
        name = unique()
        await applications.ensure_application(manifest(name, "file:///nowhere", "p"))
        watch = watch_of(api, namespace)
        async with collecting(watch.events()) as events:
            await until(lambda: len(events) == 1 and kube.store.watchers)
            kube.set_status(namespace, name, {"sync": {"status": "OutOfSync"}})
            await until(lambda: len(events) == 2)
            assert kube.drop_watches() == 1
            # Changes made while no watch is open arrive once the watch resumes.
            kube.set_status(namespace, name, {"sync": {"status": "Synced"}})
            kube.set_status(
                namespace, name, {"sync": {"status": "Synced"}, "health": {"status": "Healthy"}}
            )
            await until(lambda: len(events) == 4)
            await asyncio.sleep(0.1)
        kinds = [(e.type, e.status.sync, e.status.health) for e in events]  # type: ignore[attr-defined]
        assert kinds == [
            ("RELISTED", None, None),
            ("MODIFIED", "OutOfSync", None),
            ("MODIFIED", "Synced", None),
            ("MODIFIED", "Synced", "Healthy"),
        ]
        versions = [int(e.resource_version) for e in events]  # type: ignore[attr-defined]
        assert versions == sorted(versions)
        assert watch.resumes >= 1
        assert watch.relists == 0
        assert kube.count("list") == 1

    async def test_expired_resource_version_relists(
        self, applications: ArgoCdApplications, api: ApiClient, kube: KubeApiStandIn, namespace: str
    ) -> None:
        kept, removed = unique(), unique()
        await applications.ensure_application(manifest(kept, "file:///nowhere", "p"))
        await applications.ensure_application(manifest(removed, "file:///nowhere", "p"))
        watch = watch_of(api, namespace)
        async with collecting(watch.events()) as events:
            await until(lambda: len(events) == 2 and kube.store.watchers)
            kube.drop_watches()
            # While the watch is down: a change, a deletion, and the history compacted.
            kube.set_status(namespace, kept, {"sync": {"status": "Synced"}})
            kube.store.delete(namespace, removed)
            kube.store.remove_finalizers(namespace, removed, "argocd-application-controller")
            kube.expire_history()
            await until(lambda: watch.relists == 1 and len(events) >= 4)
        after = events[2:]
        assert [(e.type, e.name) for e in after] == [("DELETED", removed), ("RELISTED", kept)]  # type: ignore[attr-defined]
        assert after[1].status.sync == "Synced"  # type: ignore[attr-defined]
        assert kube.count("list") == 2
