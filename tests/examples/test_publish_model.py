"""examples/ci/publish_model.py against a running platform, as the CI workflows run it.

The script trains, uploads through the presigned URLs, posts the signed webhook, and
waits: the version must be registered by the registry from the webhook's event, with
the artifact the script uploaded and the CI run's lineage. The workflows' own files
are checked to call the script.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .conftest import REPO, Platform

SCRIPT = REPO / "examples" / "ci" / "publish_model.py"
TEAM = "default"  # the team of the initial admin key
COMMIT = "9c1f2a9b7d4e5f60718293a4b5c6d7e8f9012345"


@pytest.fixture(scope="module")
def webhook_secret(platform: Platform) -> str:
    answer = httpx.put(
        f"{platform.url}/v1/teams/{TEAM}/webhook-secret",
        headers={"Authorization": f"Bearer {platform.admin_key()}"},
        timeout=30.0,
    )
    assert answer.status_code == 200, answer.text
    secret: str = answer.json()["secret"]
    return secret


def _run(
    platform: Platform, secret: str, out: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": "/usr/bin:/bin",
        "MLPLANE_URL": platform.url,
        "MLPLANE_API_KEY": platform.admin_key(),
        "MLPLANE_TEAM": TEAM,
        "MLPLANE_WEBHOOK_SECRET": secret,
        **env,
    }
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--wait", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _version(platform: Platform, model: str, number: int) -> dict[str, Any]:
    answer = httpx.get(
        f"{platform.url}/v1/registry/models/{model}/versions/{number}",
        headers={"Authorization": f"Bearer {platform.admin_key()}"},
        timeout=30.0,
    )
    assert answer.status_code == 200, answer.text
    version: dict[str, Any] = answer.json()
    return version


def test_a_github_actions_run_registers_its_version(
    platform: Platform, webhook_secret: str, tmp_path: Path
) -> None:
    github = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/fraud",
        "GITHUB_RUN_ID": "7001",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_SHA": COMMIT,
        "GITHUB_REF": "refs/heads/main",
    }
    done = _run(platform, webhook_secret, tmp_path, "--model", "fraud", **github)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["webhook"] == "accepted"
    assert result["version"] == 1
    model_file = (tmp_path / "model.pkl").read_bytes()

    version = _version(platform, "fraud", 1)
    assert version["artifact"]["sha256"] == hashlib.sha256(model_file).hexdigest()
    assert version["artifact"]["size_bytes"] == len(model_file)
    assert version["framework"] == "sklearn"
    lineage = version["lineage"]
    assert lineage["commit_sha"] == COMMIT
    assert lineage["git_repository"] == "https://github.com/acme/fraud"
    assert lineage["ci_run_url"] == "https://github.com/acme/fraud/actions/runs/7001"
    assert lineage["metrics"]["accuracy"] > 0.5
    assert version["tags"]["ci.provider"] == "github_actions"
    assert version["tags"]["ci.run_id"] == "7001.1"

    # The job retried: the same delivery is a duplicate, nothing new is registered.
    again = _run(platform, webhook_secret, tmp_path, "--model", "fraud", **github)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout) | {"artifact": None} == result | {
        "webhook": "duplicate",
        "artifact": None,
    }


def test_a_gitlab_pipeline_registers_its_version(
    platform: Platform, webhook_secret: str, tmp_path: Path
) -> None:
    gitlab = {
        "GITLAB_CI": "true",
        "CI_PIPELINE_ID": "501",
        "CI_COMMIT_SHA": COMMIT,
        "CI_PROJECT_URL": "https://gitlab.example.com/acme/churn",
        "CI_PIPELINE_URL": "https://gitlab.example.com/acme/churn/-/pipelines/501",
        "CI_COMMIT_REF_NAME": "main",
    }
    done = _run(platform, webhook_secret, tmp_path, "--model", "churn", **gitlab)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["version"] == 1
    version = _version(platform, "churn", 1)
    assert version["tags"]["ci.provider"] == "gitlab_ci"
    assert version["lineage"]["ci_run_url"].endswith("/pipelines/501")


def test_a_wrong_webhook_secret_is_refused_and_the_key_never_printed(
    platform: Platform, tmp_path: Path
) -> None:
    done = _run(
        platform,
        "not-the-team-secret",
        tmp_path,
        "--model",
        "spam",
        "--provider",
        "github",
        "--run-id",
        "1.1",
        "--commit",
        COMMIT,
        "--repository",
        "https://github.com/acme/spam",
        "--run-url",
        "https://github.com/acme/spam/actions/runs/1",
    )
    assert done.returncode == 1
    assert "answered 401" in done.stderr
    assert platform.admin_key() not in done.stdout + done.stderr


def test_the_workflows_run_the_script() -> None:
    github = yaml.safe_load((REPO / "examples" / "ci" / "github-actions.yml").read_text())
    steps = [s.get("run", "") for job in github["jobs"].values() for s in job["steps"]]
    assert any("examples/ci/publish_model.py" in step for step in steps)
    gitlab = yaml.safe_load((REPO / "examples" / "ci" / "gitlab-ci.yml").read_text())
    scripts = [
        line for job in gitlab.values() if isinstance(job, dict) for line in job.get("script", [])
    ]
    assert any("examples/ci/publish_model.py" in line for line in scripts)
