"""The hosted deployer following Argo CD: the stand-in API server and its Argo CD
controller moving each Application's status from what the deployer pushed to the real
bare repository; phases recorded on the real PostgreSQL with their events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlplane_deployer.settings import DeployerSettings
from mlplane_deployer.store import DeployerTables
from mlplane_runtime.db import Database
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.kube_api import KubeApiStandIn

from ..conftest import Hosted, hosting, status_events
from ..support.events import log_of, ready
from .conftest import ask, dev_rules, in_phase, read, running, until


def phases_of(events: list[dict[str, Any]], deployment_id: str) -> list[str]:
    return [e["phase"] for e in events if e["deployment_id"] == deployment_id]


async def test_deployments_go_committed_syncing_healthy_with_their_events(
    hosted: Hosted,
    team: str,
    remote: Path,
    kube: KubeApiStandIn,
    argocd_namespace: str,
    uow_factory: UnitOfWorkFactory,
    tables: DeployerTables,
) -> None:
    await hosted.deliver(*ready(team), *ready(team, model="churn"))
    async with running(hosted), kube.argocd().running():
        fraud = await ask(hosted, team, 1)
        churn = await ask(hosted, team, 1, model="churn")
        # Each model's commit moves the branch's tip: the other one still gets healthy.
        done = await in_phase(hosted, team, fraud["id"], "healthy")
        await in_phase(hosted, team, churn["id"], "healthy")
    events = await status_events(uow_factory, tables)
    for deployment in (fraud, churn):
        assert phases_of(events, deployment["id"]) == ["pending", "committed", "syncing", "healthy"]
    healthy = [e for e in events if e["deployment_id"] == fraud["id"]][-1]
    assert healthy["previous_phase"] == "syncing"
    assert healthy["gitops_commit"] == done["gitops_commit"]
    caused = [(h["phase"], h["caused_by"]) for h in done["history"] if h["kind"] == "phase"]
    assert caused[-2:] == [("syncing", "argocd"), ("healthy", "argocd")]
    app = kube.store.get(argocd_namespace, f"{team}-fraud-dev")
    assert app["spec"]["source"] == {
        "repoURL": str(remote),
        "targetRevision": "main",
        "path": f"teams/{team}/fraud/dev/overlay",
    }
    assert app["spec"]["destination"]["namespace"] == f"{team}-dev"
    assert app["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlplane-deployer"


async def test_not_healthy_in_time_is_failed_with_the_reason(
    deployer_database: Database,
    tables: DeployerTables,
    settings: DeployerSettings,
    tmp_path: Path,
    team: str,
    uow_factory: UnitOfWorkFactory,
) -> None:
    # No Argo CD controller runs: the Application never gets a status.
    quick = settings.model_copy(update={"health_timeouts": {"dev": 1.0}})
    async with hosting(deployer_database, tables, quick, tmp_path / "deployer") as hosted:
        await dev_rules(hosted, team, rollback_on_failure=False)
        await hosted.deliver(*ready(team))
        async with running(hosted):
            asked = await ask(hosted, team, 1)
            failed = await in_phase(hosted, team, asked["id"], "failed")
    assert "not healthy within 1s of committed" in failed["message"]
    assert "no status from Argo CD" in failed["message"]
    assert failed["work"] == "none"  # this environment does not roll back on failure
    events = await status_events(uow_factory, tables)
    assert phases_of(events, asked["id"]) == ["pending", "committed", "failed"]
    assert "not healthy within" in events[-1]["message"]


async def test_a_restarted_deployer_follows_what_it_committed_before(
    deployer_database: Database,
    tables: DeployerTables,
    settings: DeployerSettings,
    tmp_path: Path,
    team: str,
    kube: KubeApiStandIn,
    argocd_namespace: str,
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with hosting(deployer_database, tables, settings, tmp_path / "first") as first:
        await first.deliver(*ready(team))
        # Only the deployment worker: it commits and ensures the Application; nothing
        # follows it and no Argo CD moves it before the deployer stops.
        async with running(first, ["deployment-worker"]):
            asked = await ask(first, team, 1)
            await in_phase(first, team, asked["id"], "committed")
            await until(
                lambda: _application(kube, argocd_namespace, f"{team}-fraud-dev"),
                lambda app: app is not None,
                "the Application",
            )
    restarted = settings.model_copy(update={"gitops_workdir": tmp_path / "clone-2"})
    async with (
        hosting(deployer_database, tables, restarted, tmp_path / "second") as second,
        running(second, ["argocd-follower"]),
        kube.argocd().running(),
    ):
        healthy = await in_phase(second, team, asked["id"], "healthy")
    assert healthy["gitops_commit"] is not None
    events = await status_events(uow_factory, tables)
    assert phases_of(events, asked["id"]) == ["pending", "committed", "syncing", "healthy"]


async def _application(kube: KubeApiStandIn, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = kube.store.get(namespace, name)
    except Exception:
        return None
    return found


async def test_replicas_following_the_same_application_record_each_change_once(
    deployer_database: Database,
    tables: DeployerTables,
    settings: DeployerSettings,
    tmp_path: Path,
    team: str,
    kube: KubeApiStandIn,
    uow_factory: UnitOfWorkFactory,
) -> None:
    other = settings.model_copy(update={"gitops_workdir": tmp_path / "clone-b"})
    async with (
        hosting(deployer_database, tables, settings, tmp_path / "a") as a,
        hosting(deployer_database, tables, other, tmp_path / "b") as b,
    ):
        await a.deliver(*ready(team))
        async with running(a), running(b), kube.argocd().running():
            asked = await ask(a, team, 1)
            b.deployer.wake()
            await in_phase(b, team, asked["id"], "healthy")
            # Both followers saw every status; let b's resync catch up before counting.
            await until(
                lambda: read(a, team, asked["id"]),
                lambda d: d["phase"] == "healthy",
                "healthy on a",
            )
    events = await status_events(uow_factory, tables)
    assert phases_of(events, asked["id"]) == ["pending", "committed", "syncing", "healthy"]


async def test_a_deleted_application_fails_its_deployment_without_a_revert(
    hosted: Hosted,
    team: str,
    remote: Path,
    kube: KubeApiStandIn,
    argocd_namespace: str,
    uow_factory: UnitOfWorkFactory,
    tables: DeployerTables,
) -> None:
    await hosted.deliver(*ready(team))
    async with running(hosted), kube.argocd().running():
        asked = await ask(hosted, team, 1)
        await in_phase(hosted, team, asked["id"], "healthy")
        kube.store.delete(argocd_namespace, f"{team}-fraud-dev")
        failed = await in_phase(hosted, team, asked["id"], "failed")
    assert failed["message"] == "the Application was deleted"
    assert failed["work"] == "none"  # a revert would bring nothing back
    assert log_of(remote) == [f"deploy {team}/fraud v1 to dev"]
    events = await status_events(uow_factory, tables)
    assert phases_of(events, asked["id"])[-1] == "failed"
