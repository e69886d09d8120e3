"""The hosted deployer with its Argo CD sync on: the stand-in API server and its Argo CD
controller (reading the real bare repository the deployer pushes to), the real
PostgreSQL, and the hosting's lifespan and workers running as the host runs them."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from mlplane_deployer.settings import DeployerSettings
from mlplane_testing.kube_api import KubeApiStandIn

from ..conftest import Hosted

T = TypeVar("T")
WORKERS = ("deployment-worker", "argocd-follower")
BOUND_S = 60.0
"""How long a test waits for the cluster to get somewhere before it fails."""
STOP_BOUND_S = 30.0


@pytest.fixture
async def kube() -> AsyncIterator[KubeApiStandIn]:
    async with KubeApiStandIn().serve() as stand_in:
        yield stand_in


@pytest.fixture
def argocd_namespace() -> str:
    return f"argocd-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def settings(
    remote: Path, tmp_path: Path, kube: KubeApiStandIn, argocd_namespace: str
) -> DeployerSettings:
    return DeployerSettings(
        gitops_remote=str(remote),
        gitops_workdir=tmp_path / "clone",
        retry_delay_s=0,
        poll_interval_s=0.2,
        kube_api_url=kube.url,
        argocd_namespace=argocd_namespace,
        cluster_resync_s=0.5,
        # The manifest scan against a real scanner is tested in tests/manifest_scan/.
        manifest_scan="off",
    )


@asynccontextmanager
async def running(hosted: Hosted, workers: Iterable[str] = WORKERS) -> AsyncIterator[None]:
    """The hosting's lifespan entered and the named workers running, as the host does."""
    names = set(workers)
    assert hosted.parts.lifespan is not None
    async with hosted.parts.lifespan:
        tasks = [
            asyncio.create_task(w.run(), name=w.name)
            for w in hosted.parts.workers
            if w.name in names
        ]
        assert len(tasks) == len(names)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            # A worker that lost its cancellation would poll this schema after it is
            # dropped, for the rest of the session: fail here, naming it, instead.
            _, still_running = await asyncio.wait(tasks, timeout=STOP_BOUND_S)
            assert not still_running, f"workers ignored cancellation: {still_running}"
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def until(read: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str) -> T:
    """Read until `done`; fails naming `what` and the last value after `BOUND_S`."""
    deadline = time.monotonic() + BOUND_S
    while True:
        value = await read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached; last {value!r}")
        await asyncio.sleep(0.05)


def as_(team: str, principal: str = "user:alice") -> dict[str, str]:
    return {"X-Mlplane-Team": team, "X-Mlplane-Principal": principal}


async def read(hosted: Hosted, team: str, deployment_id: str) -> dict[str, Any]:
    answer = await hosted.http.get(f"/deployments/{deployment_id}", headers=as_(team))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def ask(hosted: Hosted, team: str, version: int, model: str = "fraud") -> dict[str, Any]:
    answer = await hosted.http.post(
        "/deployments",
        json={"model": model, "version": version, "environment": "dev"},
        headers=as_(team),
    )
    assert answer.status_code == 201, answer.text
    hosted.deployer.wake()
    body: dict[str, Any] = answer.json()
    return body


async def in_phase(hosted: Hosted, team: str, deployment_id: str, phase: str) -> dict[str, Any]:
    return await until(
        lambda: read(hosted, team, deployment_id),
        lambda d: d["phase"] == phase,
        f"deployment {deployment_id} {phase}",
    )


async def dev_rules(hosted: Hosted, team: str, **rules: Any) -> None:
    answer = await hosted.http.put(
        "/policies/dev", json={"require_healthy_in_previous": False, **rules}, headers=as_(team)
    )
    assert answer.status_code == 200, answer.text
