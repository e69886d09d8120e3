"""The deployer's event handlers on the real PostgreSQL: every event delivered twice has
one effect, `deployment.requested` goes through the API's rules, an environment that
follows an alias asks for its own deployment."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

from mlplane_contracts.events import Environment, ScanVerdict
from mlplane_deployer.store import DeployerTables
from mlplane_runtime.uow import UnitOfWorkFactory

from ..conftest import Hosted, status_events
from ..support.events import alias_moved, built, log_of, ready, registered, requested, scanned


def as_(team: str) -> dict[str, str]:
    return {"X-Mlplane-Team": team, "X-Mlplane-Principal": "user:admin"}


async def deployments(hosted: Hosted, team: str) -> list[dict[str, object]]:
    answer = await hosted.http.get("/deployments", headers=as_(team))
    listed: list[dict[str, object]] = answer.json()["deployments"]
    return listed


async def test_every_event_delivered_twice_has_one_effect(
    hosted: Hosted, team: str, uow_factory: UnitOfWorkFactory, tables: DeployerTables
) -> None:
    facts = ready(team)
    asked = requested(team)
    for event in [*facts, asked]:
        await hosted.deliver(event, event)
    [deployment] = await deployments(hosted, team)
    assert deployment["id"] == str(asked.data.deployment_id)  # type: ignore[union-attr]
    assert deployment["requested_by"] == "user:requester"
    assert await hosted.run_jobs() == 1
    await hosted.deliver(asked)  # redelivered after the work: still nothing new
    assert await hosted.run_jobs() == 0
    phases = [e["phase"] for e in await status_events(uow_factory, tables)]
    assert phases == ["pending", "committed"]


async def test_a_replayed_request_with_a_new_event_id_is_the_same_deployment(
    hosted: Hosted, team: str
) -> None:
    await hosted.deliver(*ready(team))
    deployment_id = uuid4()
    await hosted.deliver(requested(team, deployment_id=deployment_id))
    await hosted.deliver(requested(team, deployment_id=deployment_id))
    assert [d["id"] for d in await deployments(hosted, team)] == [str(deployment_id)]


async def test_a_denied_request_event_is_a_rejected_status_with_every_reason(
    hosted: Hosted, team: str, uow_factory: UnitOfWorkFactory, tables: DeployerTables
) -> None:
    await hosted.deliver(*ready(team)[:2])  # registered and built, never scanned
    asked = requested(team, Environment.STAGING)
    await hosted.deliver(asked, asked)
    assert await deployments(hosted, team) == []
    [rejected] = await status_events(uow_factory, tables)
    assert rejected["phase"] == "rejected"
    assert rejected["deployment_id"] == str(asked.data.deployment_id)  # type: ignore[union-attr]
    assert "has not been scanned" in rejected["message"]
    assert "not healthy in dev" in rejected["message"]


async def test_an_unattested_version_is_refused_where_lineage_is_required(
    hosted: Hosted, team: str, uow_factory: UnitOfWorkFactory, tables: DeployerTables
) -> None:
    # Registered from a bare MLflow source: the registry marks it unattested, its lineage
    # placeholders; prod (lineage required by default) must not take them for lineage.
    await hosted.deliver(registered(team, lineage=False), built(team), scanned(team))
    asked = requested(team, Environment.PROD)
    await hosted.deliver(asked)
    [rejected] = await status_events(uow_factory, tables)
    assert rejected["phase"] == "rejected"
    assert "lineage" in rejected["message"]


async def test_an_older_verdict_arriving_late_does_not_replace_the_newer(
    hosted: Hosted, team: str
) -> None:
    await hosted.deliver(*ready(team))  # passed, two minutes in
    await hosted.deliver(scanned(team, verdict=ScanVerdict.FAILED, minutes=1))
    answer = await hosted.http.post(
        "/deployments",
        json={"model": "fraud", "version": 1, "environment": "dev"},
        headers=as_(team),
    )
    assert answer.status_code == 201, answer.text


async def test_a_verdict_under_an_older_scan_policy_no_longer_counts(
    hosted: Hosted, team: str
) -> None:
    await hosted.deliver(*ready(team, version=1), *ready(team, version=2))
    await hosted.deliver(scanned(team, version=2, policy_version=2, minutes=5))
    answer = await hosted.http.post(
        "/deployments",
        json={"model": "fraud", "version": 1, "environment": "dev"},
        headers=as_(team),
    )
    assert answer.status_code == 409
    assert [r["code"] for r in answer.json()["reasons"]] == ["scan_policy_outdated"]


async def test_an_environment_following_an_alias_requests_its_deployment(
    hosted: Hosted, team: str, remote: Path
) -> None:
    rules = {"follows_alias": "challenger", "require_healthy_in_previous": False}
    put = await hosted.http.put("/policies/staging", json=rules, headers=as_(team))
    assert put.status_code == 200, put.text
    await hosted.deliver(*ready(team, version=3))
    await hosted.deliver(alias_moved(team, "champion", 3))  # followed by nobody
    assert await deployments(hosted, team) == []
    moved = alias_moved(team, "challenger", 3)
    await hosted.deliver(moved, moved)
    [deployment] = await deployments(hosted, team)
    assert (deployment["environment"], deployment["version"]) == ("staging", 3)
    assert (deployment["action"], deployment["requested_by"]) == ("alias", "user:mover")
    await hosted.run_jobs()
    assert log_of(remote) == [f"deploy {team}/fraud v3 to staging"]
    # The alias is known now: the API deploys by it too.
    by_alias = await hosted.http.post(
        "/deployments",
        json={"model": "fraud", "alias": "challenger", "environment": "dev"},
        headers=as_(team),
    )
    assert by_alias.status_code == 201, by_alias.text
    assert by_alias.json()["version"] == 3
    await hosted.deliver(alias_moved(team, "challenger", None))  # removed: nothing to deploy
    assert len(await deployments(hosted, team)) == 2
