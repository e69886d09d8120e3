"""Rollback on `drift.detected`, on the real PostgreSQL and real git: a drift at least as
severe as the environment names reverts the version serving there (one revert commit,
its events, the event named as the cause); a milder one, or one about a version that
no longer serves, does nothing; redelivered and repeated drifts roll back once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlplane_contracts.events import DriftSeverity
from mlplane_deployer.gitops.message import parse_trailers
from mlplane_deployer.store import DeployerTables
from mlplane_runtime.uow import UnitOfWorkFactory

from ..conftest import Hosted, status_events
from ..support.events import digest_of, drifted, git, log_of, ready


def as_(team: str) -> dict[str, str]:
    return {"X-Mlplane-Team": team, "X-Mlplane-Principal": "user:alice"}


async def rules(hosted: Hosted, team: str, **values: Any) -> None:
    answer = await hosted.http.put(
        "/policies/dev", json={"require_healthy_in_previous": False, **values}, headers=as_(team)
    )
    assert answer.status_code == 200, answer.text


async def deploy(hosted: Hosted, team: str, version: int) -> dict[str, Any]:
    await hosted.deliver(*ready(team, version=version))
    answer = await hosted.http.post(
        "/deployments",
        json={"model": "fraud", "version": version, "environment": "dev"},
        headers=as_(team),
    )
    assert answer.status_code == 201, answer.text
    assert await hosted.run_jobs() == 1
    read = await hosted.http.get(f"/deployments/{answer.json()['id']}", headers=as_(team))
    body: dict[str, Any] = read.json()
    assert body["phase"] == "committed"
    return body


async def read(hosted: Hosted, team: str, deployment_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (
        await hosted.http.get(f"/deployments/{deployment_id}", headers=as_(team))
    ).json()
    return body


async def test_a_severe_drift_reverts_the_version_serving_and_names_the_event(
    hosted: Hosted, team: str, remote: Path, uow_factory: UnitOfWorkFactory, tables: DeployerTables
) -> None:
    await rules(hosted, team, rollback_on_drift="severe")
    await deploy(hosted, team, 1)
    second = await deploy(hosted, team, 2)
    drift = drifted(team, 2, DriftSeverity.SEVERE)
    await hosted.deliver(drift)
    assert await hosted.run_jobs() == 1
    after = await read(hosted, team, second["id"])
    assert after["phase"] == "rolled_back"
    assert after["rolled_back_by"] == f"drift:{drift.id}"
    asked = [h for h in after["history"] if h["kind"] == "rollback_requested"]
    assert [(h["caused_by"], drift.id in h["detail"]) for h in asked] == [
        (f"drift:{drift.id}", True)
    ]
    assert log_of(remote)[0] == f"roll back {team}/fraud in dev to v1"
    trailers = parse_trailers(git(remote, "log", "-1", "--format=%B", "main"))
    assert trailers["Mlplane-Requested-By"] == f"drift:{drift.id}"
    assert trailers["Mlplane-Reverts"] == second["gitops_commit"]
    # The environment's files are v1's again.
    overlay = git(remote, "show", f"main:teams/{team}/fraud/dev/overlay/kustomization.yaml")
    assert digest_of("fraud", 1) in overlay
    events = [(e["deployment_id"], e["phase"]) for e in await status_events(uow_factory, tables)]
    assert events[-1] == (second["id"], "rolled_back")


async def test_a_milder_drift_than_the_environment_names_does_nothing(
    hosted: Hosted, team: str, remote: Path, uow_factory: UnitOfWorkFactory, tables: DeployerTables
) -> None:
    await rules(hosted, team, rollback_on_drift="severe")
    await deploy(hosted, team, 1)
    second = await deploy(hosted, team, 2)
    before = await status_events(uow_factory, tables)
    await hosted.deliver(drifted(team, 2, DriftSeverity.WARNING))
    assert await hosted.run_jobs() == 0
    assert (await read(hosted, team, second["id"]))["phase"] == "committed"
    assert log_of(remote)[0] == f"deploy {team}/fraud v2 to dev"
    assert await status_events(uow_factory, tables) == before


async def test_an_environment_that_does_not_roll_back_on_drift_ignores_even_severe_ones(
    hosted: Hosted, team: str, remote: Path
) -> None:
    await rules(hosted, team)  # dev names no drift severity: drift never rolls back there
    await deploy(hosted, team, 1)
    second = await deploy(hosted, team, 2)
    await hosted.deliver(drifted(team, 2, DriftSeverity.SEVERE))
    assert await hosted.run_jobs() == 0
    assert (await read(hosted, team, second["id"]))["phase"] == "committed"


async def test_a_warning_rolls_back_where_the_environment_names_warning(
    hosted: Hosted, team: str
) -> None:
    await rules(hosted, team, rollback_on_drift="warning")
    await deploy(hosted, team, 1)
    second = await deploy(hosted, team, 2)
    await hosted.deliver(drifted(team, 2, DriftSeverity.WARNING))
    assert await hosted.run_jobs() == 1
    assert (await read(hosted, team, second["id"]))["phase"] == "rolled_back"


async def test_redelivered_and_repeated_drifts_roll_back_once(
    hosted: Hosted, team: str, remote: Path, uow_factory: UnitOfWorkFactory, tables: DeployerTables
) -> None:
    await rules(hosted, team, rollback_on_drift="severe")
    await deploy(hosted, team, 1)
    second = await deploy(hosted, team, 2)
    drift = drifted(team, 2)
    await hosted.deliver(drift, drift)
    await hosted.deliver(drifted(team, 2))  # the drift service reports it again, new id
    assert await hosted.run_jobs() == 1
    await hosted.deliver(drift, drifted(team, 2))  # after the rollback landed
    assert await hosted.run_jobs() == 0
    assert [s for s in log_of(remote) if s.startswith("roll back")] == [
        f"roll back {team}/fraud in dev to v1"
    ]
    rolled = [
        e
        for e in await status_events(uow_factory, tables)
        if e["deployment_id"] == second["id"] and e["phase"] == "rolled_back"
    ]
    assert len(rolled) == 1
    history = (await read(hosted, team, second["id"]))["history"]
    assert [h["caused_by"] for h in history if h["kind"] == "rollback_requested"] == [
        f"drift:{drift.id}"
    ]


async def test_a_drift_of_a_version_that_no_longer_serves_does_nothing(
    hosted: Hosted, team: str, remote: Path
) -> None:
    await rules(hosted, team, rollback_on_drift="warning")
    first = await deploy(hosted, team, 1)
    await deploy(hosted, team, 2)
    await hosted.deliver(drifted(team, 1, DriftSeverity.SEVERE))  # v2 serves now
    assert await hosted.run_jobs() == 0
    assert (await read(hosted, team, first["id"]))["phase"] == "committed"
    assert not [s for s in log_of(remote) if s.startswith("roll back")]


async def test_prod_rolls_back_on_a_severe_drift_by_default(hosted: Hosted, team: str) -> None:
    answer = await hosted.http.get("/policies/prod", headers=as_(team))
    assert answer.json()["rollback_on_drift"] == "severe"
    assert (await hosted.http.get("/policies/dev", headers=as_(team))).json()[
        "rollback_on_drift"
    ] is None
