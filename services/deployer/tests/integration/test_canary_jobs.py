"""Canary steps as jobs, on the real PostgreSQL and real git, the gate opened by hand
(what the Argo CD follower reports): a step is committed only once its gate opens,
after the hold, and a newer deployment takes the place of one waiting for its step."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

from mlplane_contracts.events import DeploymentPhase as P
from mlplane_runtime.jobs import ClaimRequest
from mlplane_runtime.uow import UnitOfWorkFactory

from ..conftest import Hosted
from ..support.events import digest_of, git, log_of, ready

HEADERS = {"X-Mlplane-Principal": "user:alice"}


async def deploy(hosted: Hosted, team: str, version: int) -> dict[str, Any]:
    await hosted.deliver(*ready(team, version=version))
    answer = await hosted.http.post(
        "/deployments",
        json={"model": "fraud", "version": version, "environment": "dev"},
        headers={"X-Mlplane-Team": team, **HEADERS},
    )
    assert answer.status_code == 201, answer.text
    assert await hosted.run_jobs() == 1
    return await read(hosted, team, answer.json()["id"])


async def read(hosted: Hosted, team: str, deployment_id: str) -> dict[str, Any]:
    answer = await hosted.http.get(
        f"/deployments/{deployment_id}", headers={"X-Mlplane-Team": team}
    )
    body: dict[str, Any] = answer.json()
    return body


async def healthy(hosted: Hosted, uow_factory: UnitOfWorkFactory, d: dict[str, Any]) -> None:
    async with uow_factory() as uow:
        await hosted.deployer.service(uow).observe_phase(
            UUID(d["id"]), P.HEALTHY, "argocd", "Synced, Healthy", revision=d["gitops_commit"]
        )
        await uow.commit()


async def canary_policy(hosted: Hosted, team: str, hold_s: int) -> None:
    answer = await hosted.http.put(
        "/policies/dev",
        json={
            "require_healthy_in_previous": False,
            "canary_weights": [20, 100],
            "canary_hold_s": hold_s,
            "gateway": {"name": "public", "namespace": "gateways"},
        },
        headers={"X-Mlplane-Team": team, **HEADERS},
    )
    assert answer.status_code == 200, answer.text


async def test_the_next_step_waits_for_the_gate(
    hosted: Hosted, team: str, remote: Path, uow_factory: UnitOfWorkFactory
) -> None:
    await canary_policy(hosted, team, hold_s=0)
    await deploy(hosted, team, 1)
    second = await deploy(hosted, team, 2)
    assert second["canary"]["step"] == 1
    assert await hosted.run_jobs() == 0  # not healthy yet: the gate is shut
    await healthy(hosted, uow_factory, second)
    assert await hosted.run_jobs() == 1
    done = await read(hosted, team, second["id"])
    assert (done["phase"], done["canary"]["complete"]) == ("syncing", True)
    assert log_of(remote)[:2] == [
        f"deploy {team}/fraud v2 to dev",
        f"canary {team}/fraud v2 at 20% in dev",
    ]


async def test_a_newer_deployment_replaces_one_waiting_for_its_next_step(
    hosted: Hosted, team: str, remote: Path, uow_factory: UnitOfWorkFactory
) -> None:
    await canary_policy(hosted, team, hold_s=3600)
    await deploy(hosted, team, 1)
    second = await deploy(hosted, team, 2)
    await healthy(hosted, uow_factory, second)
    held = await read(hosted, team, second["id"])
    assert held["work"] == "deploy"  # the next step waits out the hold
    assert await hosted.run_jobs() == 0
    third = await deploy(hosted, team, 3)  # weighed against v2, serving now
    assert third["canary"]["step"] == 1
    replaced = await read(hosted, team, second["id"])
    assert replaced["work"] == "none"
    assert "replaced by a newer deployment" in replaced["message"]
    assert log_of(remote)[:2] == [
        f"canary {team}/fraud v3 at 20% in dev",
        f"canary {team}/fraud v2 at 20% in dev",
    ]


async def test_canary_rules_that_cannot_work_are_refused_with_a_problem(
    hosted: Hosted, team: str
) -> None:
    headers = {"X-Mlplane-Team": team, **HEADERS}
    for rules, says in [
        ({"canary_weights": [10, 50]}, "100"),
        ({"canary_weights": [50, 10, 100], "gateway": {"name": "g", "namespace": "n"}}, "climb"),
        ({"canary_weights": [10, 100]}, "gateway"),
        ({"canary_weights": [0, 100]}, "canary_weights"),
        ({"rollback_on_drift": "catastrophic"}, "rollback_on_drift"),
    ]:
        answer = await hosted.http.put("/policies/dev", json=rules, headers=headers)
        assert 400 <= answer.status_code < 500, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert says in answer.text
    policy = await hosted.http.get("/policies", headers=headers)
    assert policy.headers["ETag"] == '"policy-0"'  # nothing was stored


async def test_a_rollback_asked_while_a_step_lands_reverts_that_step_too(
    hosted: Hosted, team: str, remote: Path, uow_factory: UnitOfWorkFactory
) -> None:
    await canary_policy(hosted, team, hold_s=0)
    await deploy(hosted, team, 1)
    second = await deploy(hosted, team, 2)
    await healthy(hosted, uow_factory, second)
    worker = hosted.deployer.worker
    [step] = await worker.claim(ClaimRequest(limit=1, lease_s=60, running={}))
    # The step is being landed when someone asks for the rollback.
    answer = await hosted.http.post(
        f"/deployments/{second['id']}/rollback", headers={"X-Mlplane-Team": team, **HEADERS}
    )
    assert answer.status_code == 202, answer.text
    landed = await worker.run_job(step)
    assert landed is not None
    assert (landed.work.value, landed.work_state.value) == ("rollback", "queued")
    assert await hosted.run_jobs() == 1
    done = await read(hosted, team, second["id"])
    assert done["phase"] == "rolled_back"
    assert log_of(remote)[:3] == [
        f"roll back {team}/fraud in dev to v1",
        f"deploy {team}/fraud v2 to dev",
        f"canary {team}/fraud v2 at 20% in dev",
    ]
    tree = git(remote, "ls-tree", "-r", "--name-only", "main", "--", f"teams/{team}")
    assert "canary" not in tree
    overlay = git(remote, "show", f"main:teams/{team}/fraud/dev/overlay/kustomization.yaml")
    assert digest_of("fraud", 1) in overlay
