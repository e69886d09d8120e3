"""The deployment worker asks the real scanner (real Trivy, over real HTTP) for its verdict
on the rendered manifests before committing: a pass commits, a failed scan is a denial
with the scanner's reasons and commits nothing, a scanner that does not answer is
retried like a GitOps remote that does not answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from mlplane_deployer.main import build
from mlplane_deployer.settings import DeployerSettings
from mlplane_deployer.store import DeployerTables
from mlplane_runtime.consumer import EventConsumer
from mlplane_runtime.db import Database
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.http_server import free_port, serve
from mlplane_testing.identity import GatewayIdentity
from mlplane_testing.service import service_app, service_context
from starlette.applications import Starlette

from ..conftest import Hosted, status_events
from ..support.events import git, log_of, ready

ALICE = {"X-Mlplane-Principal": "user:alice"}


def as_(team: str) -> dict[str, str]:
    return {"X-Mlplane-Team": team, **ALICE}


def pushed(remote: Path) -> list[str]:
    """Commit subjects on the remote's main branch; none when nothing was ever pushed."""
    heads = git(remote, "for-each-ref", "--format=%(refname)", "refs/heads/")
    return log_of(remote) if "refs/heads/main" in heads.split() else []


async def request_dev(hosted: Hosted, team: str) -> str:
    await hosted.deliver(*ready(team))
    answer = await hosted.http.post(
        "/deployments",
        json={"model": "fraud", "version": 1, "environment": "dev"},
        headers=as_(team),
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def read(hosted: Hosted, team: str, deployment_id: str) -> dict[str, Any]:
    answer = await hosted.http.get(f"/deployments/{deployment_id}", headers=as_(team))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_a_render_that_passes_the_scan_is_committed(
    hosted: Hosted, team: str, remote: Path
) -> None:
    deployment_id = await request_dev(hosted, team)
    assert await hosted.run_jobs() == 1
    deployment = await read(hosted, team, deployment_id)
    assert deployment["phase"] == "committed", deployment
    assert pushed(remote) == [f"deploy {team}/fraud v1 to dev"]


async def test_a_failed_scan_denies_the_deployment_with_its_reasons_and_commits_nothing(
    hosted: Hosted,
    team: str,
    remote: Path,
    scanner_http: httpx.AsyncClient,
    uow_factory: UnitOfWorkFactory,
    tables: DeployerTables,
) -> None:
    # The team's scanner policy for dev allows nothing above low: the rendered
    # Deployment's image from an untrusted registry (KSV-0125, medium) now fails it.
    strict = await scanner_http.put(
        "/policies/dev",
        json={"max_severity": "low", "block_when_vulnerabilities_not_assessed": False},
        headers={"X-Mlplane-Team": team},
    )
    assert strict.status_code == 200, strict.text
    deployment_id = await request_dev(hosted, team)
    assert await hosted.run_jobs() == 1  # denied at once: no retry
    deployment = await read(hosted, team, deployment_id)
    assert deployment["phase"] == "failed"
    message = deployment["message"]
    assert "failed the scanner's manifest scan under dev policy v1" in message
    assert "KSV-0125" in message
    assert f"teams/{team}/fraud/dev/base/deployment.yaml" in message  # named, not manifest-0
    assert "manifest-0.yaml" not in message
    failures = [h for h in deployment["history"] if h["kind"] == "work_failed"]
    assert len(failures) == 1
    assert failures[0]["detail"] == message
    events = await status_events(uow_factory, tables)
    assert [e["phase"] for e in events] == ["pending", "failed"]
    assert events[-1]["message"] == message
    assert pushed(remote) == []


async def test_a_scanner_that_does_not_answer_is_retried_and_the_retry_commits(
    deployer_database: Database,
    tables: DeployerTables,
    team: str,
    remote: Path,
    tmp_path: Path,
    scanner_app: Starlette,
) -> None:
    port = free_port()
    settings = DeployerSettings(
        gitops_remote=str(remote),
        gitops_workdir=tmp_path / "clone",
        retry_delay_s=0,
        job_attempts=3,
        scanner_url=f"http://127.0.0.1:{port}",  # type: ignore[arg-type]
    )
    context = service_context(
        "deployer", deployer_database, tables.messaging, data_dir=tmp_path / "deployer"
    )
    parts = build(context, tables, settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=service_app(context, parts)),
        base_url="http://deployer.test",
        auth=GatewayIdentity("deployer"),
    ) as http:
        hosted = Hosted(
            context, parts, http, EventConsumer("deployer", context.uow_factory, parts.handlers)
        )
        deployment_id = await request_dev(hosted, team)
        assert await hosted.deployer.worker.run_once() is not None
        waiting = await read(hosted, team, deployment_id)
        assert waiting["phase"] == "pending"
        assert waiting["work"] == "deploy"
        assert waiting["message"].startswith("try 1 failed, retried in 0 s: the scanner at")
        assert "did not answer the manifest scan" in waiting["message"]
        assert pushed(remote) == []
        async with serve(scanner_app, port):
            assert await hosted.run_jobs() == 1
        done = await read(hosted, team, deployment_id)
    assert done["phase"] == "committed", done
    assert [h["kind"] for h in done["history"]].count("work_failed") == 1
    assert pushed(remote) == [f"deploy {team}/fraud v1 to dev"]
