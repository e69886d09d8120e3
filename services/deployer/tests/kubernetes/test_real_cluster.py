"""The Argo CD adapter against a real cluster running Argo CD (a user's CI with kind).

Needs `KUBECONFIG`; optional: `MLPLANE_TEST_ARGOCD_NAMESPACE` (default `argocd`),
`MLPLANE_TEST_GITOPS_REPO` and `MLPLANE_TEST_GITOPS_PATH` (default Argo CD's public
example guestbook), `MLPLANE_TEST_HEALTHY_WITHIN_S` (default 300).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient
from mlplane_contracts.events import DeploymentPhase as P
from mlplane_deployer.argocd.client import ArgoCdApplications
from mlplane_deployer.argocd.connection import kube_api_client
from mlplane_deployer.argocd.follow import ApplicationPhaseChange, PhaseFollower, follow_phases
from mlplane_deployer.argocd.watch import ApplicationWatch
from mlplane_deployer.render.application import ArgoTarget
from mlplane_deployer.render.application import application as render_application
from mlplane_deployer.render.spec import ImageByDigest, RenderSpec, Workload

pytestmark = pytest.mark.kubernetes_cluster

NAMESPACE = os.environ.get("MLPLANE_TEST_ARGOCD_NAMESPACE", "argocd")
REPO = os.environ.get("MLPLANE_TEST_GITOPS_REPO", "https://github.com/argoproj/argocd-example-apps")
PATH = os.environ.get("MLPLANE_TEST_GITOPS_PATH", "guestbook")
HEALTHY_WITHIN_S = float(os.environ.get("MLPLANE_TEST_HEALTHY_WITHIN_S", "300"))


def manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/managed-by": "mlplane-deployer"},
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        },
        "spec": {
            "project": "default",
            "source": {"repoURL": REPO, "targetRevision": "HEAD", "path": PATH},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=true"],
            },
        },
    }


@pytest.fixture
async def api() -> AsyncIterator[ApiClient]:
    client = await kube_api_client(kubeconfig=Path(os.environ["KUBECONFIG"]))
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def application(api: ApiClient) -> AsyncIterator[str]:
    name = f"mlplane-test-{uuid.uuid4().hex[:8]}"
    yield name
    await ArgoCdApplications(api, namespace=NAMESPACE).delete_application(name)


async def test_applied_application_is_idempotent_and_readable(
    api: ApiClient, application: str
) -> None:
    applications = ArgoCdApplications(api, namespace=NAMESPACE)
    first = await applications.ensure_application(manifest(application))
    second = await applications.ensure_application(manifest(application))
    assert first.created
    assert not second.created
    assert second.generation == first.generation
    assert await applications.get_application(f"{application}-missing") is None


async def test_argocd_syncs_it_to_healthy(api: ApiClient, application: str) -> None:
    applications = ArgoCdApplications(api, namespace=NAMESPACE)
    follower = PhaseFollower()
    follower.track(application, revision=None, timeout_s=HEALTHY_WITHIN_S)
    watch = ApplicationWatch(api, namespace=NAMESPACE)
    await applications.ensure_application(manifest(application))
    seen: list[ApplicationPhaseChange] = []
    stream = follow_phases(watch, follower)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(HEALTHY_WITHIN_S + 30):
            async for change in stream:
                seen.append(change)
                if change.application == application and change.change.phase in (
                    P.HEALTHY,
                    P.FAILED,
                ):
                    break
    await stream.aclose()
    phases = [c.change.phase for c in seen if c.application == application]
    assert phases, "no phase change seen"
    assert phases[-1] is P.HEALTHY, seen[-1].change.reason


async def test_the_application_the_deployer_renders_is_accepted_as_is(
    api: ApiClient, application: str
) -> None:
    # The hosted sync applies exactly this object: the real API server (and Argo CD's
    # CRD schema there) must take it, labels and sync policy included.
    spec = RenderSpec(
        team="mlplane",
        model="test",
        environment="dev",
        workload=Workload(1, ImageByDigest("registry.local/mlplane/test", "sha256:" + "a" * 64)),
        namespace=application,
    )
    rendered = render_application(
        spec, ArgoTarget(repo_url=REPO, revision="HEAD", argocd_namespace=NAMESPACE), PATH
    )
    rendered["metadata"]["name"] = application
    applications = ArgoCdApplications(api, namespace=NAMESPACE)
    applied = await applications.ensure_application(rendered)
    found = await applications.get_application(application)
    assert found is not None
    assert found["spec"]["source"]["path"] == PATH
    assert found["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlplane-deployer"
    assert not (await applications.ensure_application(rendered)).created
    assert applied.created
