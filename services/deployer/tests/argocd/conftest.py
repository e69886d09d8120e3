"""The stand-in API server, a GitOps repository its Argo CD reads, and clients for both."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient
from mlplane_deployer.argocd.client import ArgoCdApplications, Backoff
from mlplane_deployer.argocd.connection import kube_api_client
from mlplane_testing.kube_api import KubeApiStandIn

FAST = Backoff(attempts=5, first_s=0.01, max_s=0.05)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


class GitOpsRepo:
    """A real git repository the stand-in's Argo CD reads overlays from."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        git(path, "init", "-q", "-b", "main")
        git(path, "config", "user.email", "test@mlplane.local")
        git(path, "config", "user.name", "test")

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        return git(self.path, "rev-parse", "HEAD")


def manifest(name: str, repo: str, path: str, revision: str = "main") -> dict[str, Any]:
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
            "source": {"repoURL": repo, "targetRevision": revision, "path": path},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "models"},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }


def unique(prefix: str = "app") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def kube() -> AsyncIterator[KubeApiStandIn]:
    async with KubeApiStandIn().serve() as stand_in:
        yield stand_in


@pytest.fixture
async def api(kube: KubeApiStandIn) -> AsyncIterator[ApiClient]:
    client = await kube_api_client(host=kube.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def namespace() -> str:
    return unique("argocd")


@pytest.fixture
def applications(api: ApiClient, namespace: str) -> ArgoCdApplications:
    return ArgoCdApplications(api, namespace=namespace, backoff=FAST)


@pytest.fixture
def gitops(tmp_path: Path) -> GitOpsRepo:
    return GitOpsRepo(tmp_path / "gitops")
