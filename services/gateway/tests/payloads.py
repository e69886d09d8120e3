"""Webhook payloads shaped as GitHub and GitLab send them (only the fields that matter
here, plus a few they always carry, so parsers ignore what they do not read)."""

from __future__ import annotations

import json
from typing import Any

COMMIT = "9fceb02d0ae598e95dc970b74767f19372d61af8"
SHA256 = "ab" * 32


def workflow_run(
    *,
    path: str = ".github/workflows/mlplane-fraud.yml",
    conclusion: str | None = "success",
    status: str = "completed",
    action: str = "completed",
    run_id: int = 30433642,
    attempt: int = 1,
) -> dict[str, Any]:
    return {
        "action": action,
        "workflow_run": {
            "id": run_id,
            "name": "train",
            "path": path,
            "run_attempt": attempt,
            "head_branch": "main",
            "head_sha": COMMIT,
            "status": status,
            "conclusion": conclusion,
            "html_url": f"https://github.com/acme/fraud/actions/runs/{run_id}",
            "updated_at": "2026-11-30T10:15:00Z",
            "event": "push",
        },
        "repository": {"full_name": "acme/fraud", "html_url": "https://github.com/acme/fraud"},
        "sender": {"login": "octocat"},
    }


def release(
    *,
    tag: str = "fraud/v1.4.0",
    target: str = COMMIT,
    assets: list[dict[str, Any]] | None = None,
    action: str = "published",
) -> dict[str, Any]:
    if assets is None:
        assets = [
            {
                "name": "model.onnx",
                "size": 2048,
                "browser_download_url": (
                    "https://github.com/acme/fraud/releases/download/fraud/v1.4.0/model.onnx"
                ),
                "content_type": "application/octet-stream",
                "digest": f"sha256:{SHA256}",
            },
            {"name": "README.md", "size": 10, "browser_download_url": "https://x.test/r"},
        ]
    return {
        "action": action,
        "release": {
            "id": 1001,
            "tag_name": tag,
            "target_commitish": target,
            "html_url": f"https://github.com/acme/fraud/releases/tag/{tag}",
            "published_at": "2026-11-30T11:00:00Z",
            "assets": assets,
        },
        "repository": {"html_url": "https://github.com/acme/fraud"},
    }


def gitlab_pipeline(
    *, status: str = "success", variables: dict[str, str] | None = None
) -> dict[str, Any]:
    if variables is None:
        variables = {
            "MLPLANE_MODEL": "churn",
            "MLPLANE_ARTIFACT_URI": "s3://models/churn/31/model.pkl",
            "MLPLANE_ARTIFACT_SHA256": SHA256,
            "MLPLANE_ARTIFACT_SIZE": "4096",
            "MLPLANE_FRAMEWORK": "sklearn",
        }
    return {
        "object_kind": "pipeline",
        "object_attributes": {
            "id": 31,
            "iid": 3,
            "ref": "main",
            "tag": False,
            "sha": COMMIT,
            "status": status,
            "finished_at": "2026-11-30 12:00:00 UTC" if status == "success" else None,
            "url": "https://gitlab.example.com/ml/churn/-/pipelines/31",
            "variables": [{"key": k, "value": v} for k, v in variables.items()],
        },
        "project": {"web_url": "https://gitlab.example.com/ml/churn"},
    }


def custom_run(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "fraud",
        "run_id": "7001.1",
        "conclusion": "succeeded",
        "completed_at": "2026-11-30T10:15:00Z",
        "artifact": {
            "uri": "s3://models/fraud/7001/model.onnx",
            "sha256": SHA256,
            "size_bytes": 2048,
            "framework": "onnx",
        },
        "lineage": {
            "git_repository": "https://github.com/acme/fraud",
            "commit_sha": COMMIT,
            "ci_run_url": "https://github.com/acme/fraud/actions/runs/7001",
        },
    }
    body.update(overrides)
    return body


def raw(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()
