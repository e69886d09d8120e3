"""The deployer's HTTP API on the real PostgreSQL and real git: requests, approvals,
denials with every reason, promotion, rollback as a revert commit, history, policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from mlplane_contracts.events import DeploymentPhase, ScanVerdict
from mlplane_contracts.scopes import ADMIN, DEPLOY_WRITE, MODELS_READ
from mlplane_deployer.gitops.message import parse_trailers
from mlplane_deployer.store import DeployerTables
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.identity import GatewayIdentity

from ..conftest import Hosted, status_events
from ..support.events import built, git, log_of, ready, registered, scanned

ALICE = {"X-Mlplane-Principal": "user:alice"}
CAROL = {"X-Mlplane-Principal": "user:carol"}


def as_(team: str, who: dict[str, str] = ALICE) -> dict[str, str]:
    return {"X-Mlplane-Team": team, **who}


async def ask(
    hosted: Hosted, team: str, environment: str, version: int = 1, **extra: Any
) -> httpx.Response:
    headers = as_(team, extra.pop("who", ALICE)) | extra.pop("headers", {})
    body = {"model": "fraud", "version": version, "environment": environment, **extra}
    return await hosted.http.post("/deployments", json=body, headers=headers)


async def relax(hosted: Hosted, team: str, environment: str, **rules: Any) -> None:
    answer = await hosted.http.put(f"/policies/{environment}", json=rules, headers=as_(team))
    assert answer.status_code == 200, answer.text


async def test_a_deployment_to_dev_is_committed_and_says_where_it_stops(
    hosted: Hosted, team: str, remote: Path, uow_factory: UnitOfWorkFactory, tables: DeployerTables
) -> None:
    await hosted.deliver(*ready(team))
    answer = await ask(hosted, team, "dev")
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["phase"] == "pending"
    assert created["work"] == "deploy"
    assert created["decision"] == {"allowed": True, "policy_version": 0, "reasons": []}
    assert await hosted.run_jobs() == 1
    read = (await hosted.http.get(f"/deployments/{created['id']}", headers=as_(team))).json()
    assert read["phase"] == "committed"
    assert "no cluster is configured" in read["message"]
    assert log_of(remote) == [f"deploy {team}/fraud v1 to dev"]
    trailers = parse_trailers(git(remote, "log", "-1", "--format=%B", "main"))
    assert trailers["Mlplane-Requested-By"] == "user:alice"
    assert trailers["Mlplane-Digest"] == read["digest"]
    assert trailers["Mlplane-Policy-Version"] == "0"
    assert trailers["Mlplane-Change-Id"] == f"deploy-{created['id']}"
    history = [(h["kind"], h["phase"], h["caused_by"]) for h in read["history"]]
    assert history == [
        ("requested", None, "user:alice"),
        ("decided", None, "user:alice"),
        ("phase", "pending", "user:alice"),
        ("phase", "committed", "service:deployer"),
    ]
    events = await status_events(uow_factory, tables)
    assert [(e["phase"], e["previous_phase"]) for e in events] == [
        ("pending", None),
        ("committed", "pending"),
    ]
    assert events[-1]["gitops_commit"] == read["gitops_commit"]


async def test_the_same_request_twice_is_one_deployment(hosted: Hosted, team: str) -> None:
    await hosted.deliver(*ready(team))
    first = await ask(hosted, team, "dev")
    again = await ask(hosted, team, "dev")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    await hosted.run_jobs()
    # An Idempotency-Key repeats the same request even once the first is committed.
    keyed = await ask(hosted, team, "dev", headers={"Idempotency-Key": "k-1"})
    assert keyed.json()["id"] == first.json()["id"]
    listed = (await hosted.http.get("/deployments", headers=as_(team))).json()
    assert len(listed["deployments"]) == 1


async def test_a_denial_lists_every_reason_and_its_policy_version(
    hosted: Hosted, team: str
) -> None:
    await hosted.deliver(registered(team), built(team))  # never scanned
    answer = await ask(hosted, team, "staging")
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == "https://mlplane.io/problems/deployment-denied"
    assert problem["policy_version"] == 0
    assert {r["code"] for r in problem["reasons"]} == {"scan_missing", "not_healthy_in_previous"}
    assert isinstance(problem["decision_id"], int)
    unbuilt = await ask(hosted, team, "dev", version=9)
    assert [r["code"] for r in unbuilt.json()["reasons"]] == ["image_unknown"]
    await hosted.deliver(scanned(team, verdict=ScanVerdict.FAILED))
    failed = await ask(hosted, team, "dev")
    assert [r["code"] for r in failed.json()["reasons"]] == ["scan_not_passed"]
    listed = (await hosted.http.get("/deployments", headers=as_(team))).json()
    assert listed["deployments"] == []


async def test_prod_waits_for_an_approval_the_requester_cannot_give(
    hosted: Hosted, team: str, remote: Path
) -> None:
    await hosted.deliver(*ready(team))
    await relax(
        hosted,
        team,
        "prod",
        require_healthy_in_previous=False,
        approvals_required=1,
        require_lineage=True,
    )
    answer = await ask(hosted, team, "prod")
    assert answer.status_code == 201, answer.text
    waiting = answer.json()
    assert waiting["waiting_for_approval"] is True
    assert waiting["policy_version"] == 1
    assert "needs 1 approval" in waiting["message"]
    path = f"/deployments/{waiting['id']}/approvals"
    own = await hosted.http.post(path, headers=as_(team, ALICE))
    assert own.status_code == 403
    assert own.json()["type"] == "https://mlplane.io/problems/requester-cannot-approve"
    scoped = GatewayIdentity("deployer", scopes={MODELS_READ, DEPLOY_WRITE})
    lacking = await hosted.http.post(path, headers=as_(team, CAROL), auth=scoped)
    assert lacking.status_code == 403
    assert lacking.json()["required_scope"] == "deploy:approve"
    assert await hosted.run_jobs() == 0  # nothing is queued while it waits
    approved = await hosted.http.post(path, headers=as_(team, CAROL))
    assert approved.status_code == 200, approved.text
    assert approved.json()["work"] == "deploy"
    assert approved.json()["approvals"] == ["user:carol"]
    assert await hosted.run_jobs() == 1
    trailers = parse_trailers(git(remote, "log", "-1", "--format=%B", "main"))
    assert trailers["Mlplane-Approved-By"] == "user:carol"
    assert trailers["Mlplane-Policy-Version"] == "1"
    read = (await hosted.http.get(f"/deployments/{waiting['id']}", headers=as_(team))).json()
    kinds = [(h["kind"], h["caused_by"]) for h in read["history"]]
    assert ("approved", "user:carol") in kinds
    assert read["approved_by"][0]["principal"] == "user:carol"


async def test_promote_goes_through_the_next_environments_rules(
    hosted: Hosted, team: str, remote: Path
) -> None:
    await hosted.deliver(*ready(team))
    dev = (await ask(hosted, team, "dev")).json()
    early = await hosted.http.post(f"/deployments/{dev['id']}/promote", headers=as_(team))
    assert early.status_code == 409  # pending: nothing to promote yet
    await hosted.run_jobs()
    denied = await hosted.http.post(f"/deployments/{dev['id']}/promote", headers=as_(team))
    assert denied.status_code == 409
    assert [r["code"] for r in denied.json()["reasons"]] == ["not_healthy_in_previous"]
    # What the cluster watch reports through the seam: dev is healthy.
    async with hosted.context.uow_factory() as uow:
        await hosted.deployer.service(uow).observe_phase(
            UUID(dev["id"]), DeploymentPhase.HEALTHY, "argocd", "synced and healthy"
        )
        await uow.commit()
    promoted = await hosted.http.post(f"/deployments/{dev['id']}/promote", headers=as_(team))
    assert promoted.status_code == 201, promoted.text
    staging = promoted.json()
    assert (staging["environment"], staging["action"]) == ("staging", "promote")
    await hosted.run_jobs()
    assert log_of(remote)[0] == f"promote {team}/fraud v1 to staging"


async def test_rollback_is_a_revert_commit_back_to_the_version_before(
    hosted: Hosted, team: str, remote: Path
) -> None:
    await hosted.deliver(*ready(team, version=1), *ready(team, version=2))
    await ask(hosted, team, "dev", version=1)
    await hosted.run_jobs()
    second = (await ask(hosted, team, "dev", version=2)).json()
    await hosted.run_jobs()
    overlay = f"teams/{team}/fraud/dev/overlay/kustomization.yaml"
    assert "model-version: '2'" in git(remote, "show", f"main:{overlay}")
    rollback = await hosted.http.post(
        f"/deployments/{second['id']}/rollback", headers=as_(team, CAROL)
    )
    assert rollback.status_code == 202, rollback.text
    assert rollback.json()["work"] == "rollback"
    assert await hosted.run_jobs() == 1
    assert log_of(remote)[0] == f"roll back {team}/fraud in dev to v1"
    assert "model-version: '1'" in git(remote, "show", f"main:{overlay}")
    read = (await hosted.http.get(f"/deployments/{second['id']}", headers=as_(team))).json()
    assert read["phase"] == "rolled_back"
    assert read["rollback_commit"] == git(remote, "rev-parse", "main").strip()
    assert read["history"][-1]["caused_by"] == "user:carol"
    again = await hosted.http.post(f"/deployments/{second['id']}/rollback", headers=as_(team))
    assert again.status_code == 202
    assert await hosted.run_jobs() == 0


async def test_rolling_back_the_first_deployment_says_it_removes_it(
    hosted: Hosted, team: str, remote: Path
) -> None:
    await hosted.deliver(*ready(team, version=1))
    first = (await ask(hosted, team, "dev", version=1)).json()
    await hosted.run_jobs()
    rollback = await hosted.http.post(
        f"/deployments/{first['id']}/rollback", headers=as_(team, CAROL)
    )
    assert rollback.status_code == 202, rollback.text
    assert await hosted.run_jobs() == 1
    assert log_of(remote)[0] == f"roll back {team}/fraud in dev removing v1"
    listed = git(remote, "ls-tree", "-r", "--name-only", "main")
    assert f"teams/{team}/fraud/dev/" not in listed


async def test_another_teams_deployment_is_not_found(hosted: Hosted, team: str) -> None:
    await hosted.deliver(*ready(team))
    mine = (await ask(hosted, team, "dev")).json()
    theirs = await hosted.http.get(f"/deployments/{mine['id']}", headers=as_("other-team"))
    assert theirs.status_code == 404


async def test_policy_edits_are_versions_guarded_by_if_match(hosted: Hosted, team: str) -> None:
    first = await hosted.http.get("/policies", headers=as_(team))
    assert first.json()["version"] == 0
    assert [e["name"] for e in first.json()["environments"]] == ["dev", "staging", "prod"]
    body = {"environments": [{"name": "dev"}, {"name": "prod", "rules": {"approvals_required": 2}}]}
    put = await hosted.http.put(
        "/policies", json=body, headers=as_(team) | {"If-Match": first.headers["ETag"]}
    )
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 1
    assert put.json()["changed_by"] == "user:alice"
    stale = await hosted.http.put(
        "/policies", json=body, headers=as_(team) | {"If-Match": first.headers["ETag"]}
    )
    assert stale.status_code == 412
    writer = GatewayIdentity("deployer", scopes={MODELS_READ, DEPLOY_WRITE})
    refused = await hosted.http.put("/policies/dev", json={}, headers=as_(team), auth=writer)
    assert refused.status_code == 403
    assert refused.json()["required_scope"] == ADMIN
    rules = await hosted.http.get("/policies/prod", headers=as_(team))
    assert rules.json()["approvals_required"] == 2
    unknown = await hosted.http.get("/policies/staging", headers=as_(team))
    assert unknown.status_code == 404
