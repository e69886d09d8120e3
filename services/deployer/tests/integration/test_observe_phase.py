"""What a cluster follower reports, recorded on the real PostgreSQL: several replicas
report the same changes, some late; only allowed changes about the commit serving now,
newer than the last recorded, land, each once with its event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from mlplane_contracts.events import DeploymentPhase as P
from mlplane_deployer.cluster import SyncTarget
from mlplane_deployer.domain.deployments import Deployment
from mlplane_deployer.settings import DeployerSettings
from mlplane_deployer.store import DeployerTables
from mlplane_runtime.db import Database
from mlplane_runtime.uow import UnitOfWorkFactory

from ..conftest import Hosted, hosting, status_events
from ..support.events import ready


class PushedTargets:
    """A cluster seam that only notes what was pushed (the follower is called by hand)."""

    def __init__(self) -> None:
        self.targets: list[SyncTarget] = []

    async def after_push(self, target: SyncTarget) -> None:
        self.targets.append(target)


@pytest.fixture
def pushed() -> PushedTargets:
    return PushedTargets()


@pytest.fixture
async def hosted(
    deployer_database: Database,
    tables: DeployerTables,
    settings: DeployerSettings,
    tmp_path: Path,
    pushed: PushedTargets,
) -> AsyncIterator[Hosted]:
    """The deployer with a cluster configured, so its commits wait for health."""
    async with hosting(deployer_database, tables, settings, tmp_path / "d", pushed) as hosted:
        yield hosted


async def committed(hosted: Hosted, team: str, version: int = 1) -> dict[str, Any]:
    await hosted.deliver(*ready(team, version=version))
    answer = await hosted.http.post(
        "/deployments",
        json={"model": "fraud", "version": version, "environment": "dev"},
        headers={"X-Mlplane-Team": team, "X-Mlplane-Principal": "user:alice"},
    )
    assert answer.status_code == 201, answer.text
    assert await hosted.run_jobs() == 1
    read = await hosted.http.get(
        f"/deployments/{answer.json()['id']}", headers={"X-Mlplane-Team": team}
    )
    body: dict[str, Any] = read.json()
    assert body["phase"] == "committed"
    assert "the cluster syncs it" in body["message"]
    return body


async def observe(
    hosted: Hosted, uow_factory: UnitOfWorkFactory, deployment_id: str, phase: P, **kw: Any
) -> Deployment | None:
    async with uow_factory() as uow:
        moved = await hosted.deployer.service(uow).observe_phase(
            UUID(deployment_id), phase, "argocd", "seen", **kw
        )
        await uow.commit()
    return moved


async def phases(uow_factory: UnitOfWorkFactory, tables: DeployerTables) -> list[str]:
    return [e["phase"] for e in await status_events(uow_factory, tables)]


async def test_a_late_replica_reporting_an_older_status_changes_nothing(
    hosted: Hosted, team: str, uow_factory: UnitOfWorkFactory, tables: DeployerTables
) -> None:
    d = await committed(hosted, team)
    commit = d["gitops_commit"]
    assert await observe(
        hosted, uow_factory, d["id"], P.SYNCING, revision=commit, resource_version=10
    )
    assert await observe(
        hosted, uow_factory, d["id"], P.HEALTHY, revision=commit, resource_version=12
    )
    # Another replica, behind, reports what it saw between: ignored, no event.
    late = await observe(
        hosted, uow_factory, d["id"], P.SYNCING, revision=commit, resource_version=11
    )
    assert late is None
    again = await observe(
        hosted, uow_factory, d["id"], P.HEALTHY, revision=commit, resource_version=12
    )
    assert again is None
    assert await phases(uow_factory, tables) == ["pending", "committed", "syncing", "healthy"]


async def test_a_status_about_another_commit_changes_nothing(
    hosted: Hosted, team: str, uow_factory: UnitOfWorkFactory, tables: DeployerTables
) -> None:
    d = await committed(hosted, team)
    other = "0" * 40
    assert await observe(hosted, uow_factory, d["id"], P.HEALTHY, revision=other) is None
    # An abbreviated SHA of the commit serving is the same commit.
    assert await observe(hosted, uow_factory, d["id"], P.HEALTHY, revision=d["gitops_commit"][:12])
    assert await phases(uow_factory, tables) == ["pending", "committed", "healthy"]


async def test_a_timeout_counts_from_the_recorded_wait_not_the_replicas_clock(
    hosted: Hosted, team: str, uow_factory: UnitOfWorkFactory, tables: DeployerTables
) -> None:
    d = await committed(hosted, team)
    # A replica whose own deadline passed early: the recorded wait is not over yet.
    assert await observe(hosted, uow_factory, d["id"], P.FAILED, timeout_s=3600) is None
    failed = await observe(hosted, uow_factory, d["id"], P.FAILED, timeout_s=0.001)
    assert failed is not None
    assert failed.phase is P.FAILED
    # dev rolls back on failure by default: the revert is queued, named for the health.
    assert (failed.work.value, failed.rolled_back_by) == ("rollback", "health:argocd")
    assert await hosted.run_jobs() == 1
    assert await phases(uow_factory, tables) == ["pending", "committed", "failed", "rolled_back"]


async def test_a_move_the_domain_refuses_is_ignored(
    hosted: Hosted, team: str, uow_factory: UnitOfWorkFactory, tables: DeployerTables
) -> None:
    d = await committed(hosted, team)
    assert await observe(hosted, uow_factory, d["id"], P.PENDING) is None
    assert await phases(uow_factory, tables) == ["pending", "committed"]


async def test_a_deployment_a_newer_one_replaced_is_no_longer_moved(
    hosted: Hosted, team: str, uow_factory: UnitOfWorkFactory, tables: DeployerTables
) -> None:
    first = await committed(hosted, team, 1)
    await committed(hosted, team, 2)
    # A replica that has not seen v2 yet times v1 out: v2 is what the cluster runs now.
    assert await observe(hosted, uow_factory, first["id"], P.FAILED, timeout_s=0.001) is None
    assert await hosted.run_jobs() == 0
    assert await phases(uow_factory, tables) == ["pending", "committed"] * 2


async def test_each_pushed_commit_is_handed_to_the_cluster(
    hosted: Hosted, team: str, pushed: PushedTargets
) -> None:
    d = await committed(hosted, team)
    [target] = pushed.targets
    assert (str(target.deployment_id), target.commit, target.phase) == (
        d["id"],
        d["gitops_commit"],
        P.COMMITTED,
    )
    assert target.overlay_path == f"teams/{team}/fraud/dev/overlay"
    assert (target.image_repository, target.digest) == (d["image"].split("@")[0], d["digest"])
