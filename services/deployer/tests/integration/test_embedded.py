"""Embedded mode: no remote configured, the remote is a bare repository under the data
directory (made on the first start) and, with no cluster, a deployment stops at
`committed`. With a cluster, the job hands each pushed deployment to `ClusterSync`."""

from __future__ import annotations

from pathlib import Path

import httpx
from mlplane_deployer.cluster import SyncTarget
from mlplane_deployer.main import build
from mlplane_deployer.settings import DeployerSettings
from mlplane_deployer.store import DeployerTables
from mlplane_runtime.consumer import EventConsumer
from mlplane_runtime.db import Database
from mlplane_testing.identity import GatewayIdentity
from mlplane_testing.service import service_app, service_context

from ..conftest import Hosted
from ..support.events import log_of, ready

HEADERS = {"X-Mlplane-Principal": "user:alice"}


class RecordingSync:
    def __init__(self) -> None:
        self.targets: list[SyncTarget] = []

    async def after_push(self, target: SyncTarget) -> None:
        self.targets.append(target)


def hosted_on(
    database: Database, tables: DeployerTables, data_dir: Path, sync: RecordingSync | None
) -> tuple[Hosted, object]:
    context = service_context("deployer", database, tables.messaging, data_dir=data_dir)
    parts = build(
        context,
        tables,
        # The platform's own scanner is not served here (tests/manifest_scan/ scans).
        DeployerSettings(manifest_scan="off"),
        cluster=sync,
    )
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service_app(context, parts)),
        base_url="http://deployer.test",
        auth=GatewayIdentity("deployer"),
    )
    return Hosted(
        context, parts, http, EventConsumer("deployer", context.uow_factory, dict(parts.handlers))
    ), parts.lifespan


async def test_embedded_mode_commits_to_a_bare_repository_and_stops_at_committed(
    deployer_database: Database, tables: DeployerTables, team: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "deployer"
    hosted, _lifespan = hosted_on(deployer_database, tables, data_dir, None)
    assert hosted.parts.lifespan is not None
    async with hosted.parts.lifespan, hosted.http:
        remote = data_dir / "gitops.git"
        assert (remote / "HEAD").exists()
        await hosted.deliver(*ready(team))
        answer = await hosted.http.post(
            "/deployments",
            json={"model": "fraud", "version": 1, "environment": "dev"},
            headers={"X-Mlplane-Team": team, **HEADERS},
        )
        assert answer.status_code == 201, answer.text
        assert await hosted.run_jobs() == 1
        read = await hosted.http.get(
            f"/deployments/{answer.json()['id']}", headers={"X-Mlplane-Team": team}
        )
    assert read.json()["phase"] == "committed"
    assert read.json()["message"] == (
        "committed to the GitOps repository; no cluster is configured, so it stops here"
    )
    assert log_of(remote) == [f"deploy {team}/fraud v1 to dev"]
    assert (data_dir / "gitops" / ".git").exists()  # the working clone beside it


async def test_a_configured_cluster_is_handed_each_pushed_deployment(
    deployer_database: Database, tables: DeployerTables, team: str, tmp_path: Path
) -> None:
    sync = RecordingSync()
    hosted, _ = hosted_on(deployer_database, tables, tmp_path / "deployer", sync)
    assert hosted.parts.lifespan is not None
    async with hosted.parts.lifespan, hosted.http:
        await hosted.deliver(*ready(team))
        answer = await hosted.http.post(
            "/deployments",
            json={"model": "fraud", "version": 1, "environment": "dev"},
            headers={"X-Mlplane-Team": team, **HEADERS},
        )
        await hosted.run_jobs()
        read = (
            await hosted.http.get(
                f"/deployments/{answer.json()['id']}", headers={"X-Mlplane-Team": team}
            )
        ).json()
    [target] = sync.targets
    assert str(target.deployment_id) == read["id"]
    assert target.commit == read["gitops_commit"]
    assert target.overlay_path == f"teams/{team}/fraud/dev/overlay"
    assert read["message"] == "committed to the GitOps repository; the cluster syncs it"
