#!/usr/bin/env python3
"""Train a toy model, upload it through the registry's presigned URLs, post the signed CI webhook.

The steps both example workflows run (github-actions.yml, gitlab-ci.yml), as one
script so a laptop runs the same thing:

    MLPLANE_URL=https://mlplane.example.com MLPLANE_API_KEY=... MLPLANE_TEAM=fraud-team \\
    MLPLANE_WEBHOOK_SECRET=... python examples/ci/publish_model.py --model fraud --wait

1. train: a scikit-learn logistic regression on a synthetic data set (seeded, so the
   same commit gives the same model), pickled to `<out>/model.pkl`;
2. upload: `POST /v1/registry/models/<model>/uploads` with the file's size and sha256,
   a PUT of each part to its presigned URL (object storage, not the platform), then
   `.../complete`, which checks size and digest (README "Uploading an artifact");
3. announce: the custom `mlplane.run` payload to `/v1/webhooks/<provider>/<team>`,
   signed as the provider signs (GitHub: HMAC-SHA256 of the body in
   `X-Hub-Signature-256`; GitLab: the secret in `X-Gitlab-Token`), with the run id as
   the delivery id, so a retried job is recorded once (README "CI webhooks");
4. with `--wait`: poll the registry until the version the webhook registers appears,
   and print it.

Needs `httpx` and `scikit-learn`. The API key needs `models:write` on the team (upload)
and `models:read` (for `--wait`); the webhook secret is the team's
(`PUT /v1/teams/<team>/webhook-secret`, an admin's). The CI run is described by
`--run-id`, `--commit`, `--repository`, `--run-url` or, when absent, by the variables
GitHub Actions (GITHUB_*) or GitLab CI (CI_*) set. Exit codes: 0 published, 1 refused
(the message says by what), 2 bad usage.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import json
import os
import pickle
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

POLL_S = 0.5


class Refused(Exception):
    """The platform (or object storage) said no; the message says what and why."""


@dataclass(frozen=True)
class CiRun:
    provider: str  # github | gitlab
    run_id: str
    commit_sha: str
    repository: str
    run_url: str
    ref: str | None


def ci_run_from(args: argparse.Namespace, env: dict[str, str]) -> CiRun:
    """The CI run from the arguments, else from the provider's own variables."""
    if env.get("GITLAB_CI") or args.provider == "gitlab":
        provider = "gitlab"
        run_id = args.run_id or env.get("CI_PIPELINE_ID", "")
        commit = args.commit or env.get("CI_COMMIT_SHA", "")
        repository = args.repository or env.get("CI_PROJECT_URL", "")
        run_url = args.run_url or env.get("CI_PIPELINE_URL", "")
        ref = env.get("CI_COMMIT_REF_NAME")
    else:
        provider = "github"
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        repo = env.get("GITHUB_REPOSITORY", "")
        github_run = env.get("GITHUB_RUN_ID", "")
        attempt = env.get("GITHUB_RUN_ATTEMPT", "1")
        run_id = args.run_id or (f"{github_run}.{attempt}" if github_run else "")
        commit = args.commit or env.get("GITHUB_SHA", "")
        repository = args.repository or (f"{server}/{repo}" if repo else "")
        run_url = args.run_url or (
            f"{server}/{repo}/actions/runs/{github_run}" if repo and github_run else ""
        )
        ref = env.get("GITHUB_REF")
    missing = [
        name
        for name, value in (
            ("--run-id", run_id),
            ("--commit", commit),
            ("--repository", repository),
            ("--run-url", run_url),
        )
        if not value
    ]
    if missing:
        raise SystemExit(f"error: not in a CI job; give {', '.join(missing)}")
    return CiRun(provider, run_id, commit, repository, run_url, ref or None)


def train(out: Path, seed: int) -> tuple[Path, dict[str, float]]:
    """A small classifier on synthetic data, pickled; its held-out accuracy."""
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    features, labels = make_classification(n_samples=600, n_features=8, random_state=seed)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.25, random_state=seed
    )
    model = LogisticRegression(max_iter=500).fit(x_train, y_train)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.pkl"
    buffer = io.BytesIO()
    pickle.dump(model, buffer, protocol=5)
    path.write_bytes(buffer.getvalue())
    return path, {"accuracy": round(float(model.score(x_test, y_test)), 4)}


def _ok(answer: httpx.Response, *expected: int) -> Any:
    if answer.status_code not in expected:
        # problem+json says what is wrong; never echo request headers (the key).
        raise Refused(
            f"{answer.request.method} {answer.request.url.path} answered "
            f"{answer.status_code}: {answer.text[:500]}"
        )
    return answer.json()


def upload(api: httpx.Client, model: str, path: Path) -> dict[str, Any]:
    """The file through the presigned part URLs; the verified artifact {uri, size, sha256}."""
    content = path.read_bytes()
    sha256 = hashlib.sha256(content).hexdigest()
    plan = _ok(
        api.post(
            f"/v1/registry/models/{model}/uploads",
            json={"size_bytes": len(content), "sha256": sha256, "filename": path.name},
        ),
        201,
    )
    parts = []
    offset = 0
    with httpx.Client(timeout=300.0) as storage:  # no API key: the URL is the credential
        for part in plan["parts"]:
            chunk = content[offset : offset + part["size_bytes"]]
            offset += part["size_bytes"]
            put = storage.put(part["url"], content=chunk)
            if put.status_code != 200:
                raise Refused(f"part {part['number']}: storage answered {put.status_code}")
            parts.append({"number": part["number"], "etag": put.headers["etag"]})
    artifact: dict[str, Any] = _ok(
        api.post(
            f"/v1/registry/models/{model}/uploads/{plan['upload_id']}/complete",
            json={"parts": parts},
        ),
        200,
    )
    return artifact


def webhook_payload(
    model: str, run: CiRun, artifact: dict[str, Any], metrics: dict[str, float]
) -> bytes:
    payload = {
        "model": model,
        "run_id": run.run_id,
        "conclusion": "succeeded",
        "completed_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "artifact": {
            "uri": artifact["uri"],
            "sha256": artifact["sha256"],
            "size_bytes": artifact["size_bytes"],
            "framework": "sklearn",
            "media_type": "application/octet-stream",
        },
        "lineage": {
            "git_repository": run.repository,
            "commit_sha": run.commit_sha,
            "ci_run_url": run.run_url,
            "metrics": metrics,
            **({"git_ref": run.ref} if run.ref else {}),
        },
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def announce(api: httpx.Client, team: str, secret: str, run: CiRun, body: bytes) -> str:
    """Post the signed payload; 'accepted' or 'duplicate' (a retried job)."""
    headers = {"content-type": "application/json"}
    if run.provider == "github":
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers |= {
            "X-GitHub-Event": "mlplane.run",
            "X-GitHub-Delivery": f"mlplane-run-{run.run_id}",
            "X-Hub-Signature-256": f"sha256={signature}",
        }
    else:
        headers |= {
            "X-Gitlab-Event": "mlplane.run",
            "X-Gitlab-Token": secret,
            "Idempotency-Key": f"mlplane-run-{run.run_id}",
        }
    answer = api.post(f"/v1/webhooks/{run.provider}/{team}", content=body, headers=headers)
    status: str = _ok(answer, 200, 202)["status"]
    if status not in ("accepted", "duplicate"):
        raise Refused(f"the gateway ignored the delivery: {answer.text[:500]}")
    return status


def wait_for_version(api: httpx.Client, model: str, run: CiRun, timeout_s: float) -> Any:
    """The version the registry registered for this run (tag ci.run_id), once it exists."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = api.get(
            "/v1/registry/versions", params={"model": model, "tag": f"ci.run_id={run.run_id}"}
        )
        if answer.status_code == 200 and answer.json()["versions"]:
            return answer.json()["versions"][0]
        if answer.status_code not in (200, 404):
            _ok(answer, 200)
        if time.monotonic() > deadline:
            raise Refused(f"no version of {model} for run {run.run_id} after {timeout_s:g} s")
        time.sleep(POLL_S)


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model name (a DNS label)")
    parser.add_argument("--provider", choices=["github", "gitlab"], help="default: detected")
    parser.add_argument("--run-id")
    parser.add_argument("--commit")
    parser.add_argument("--repository")
    parser.add_argument("--run-url")
    parser.add_argument("--out", type=Path, default=Path("out"), help="where model.pkl goes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--wait", action="store_true", help="wait for the registered version")
    parser.add_argument("--wait-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    needed = ["MLPLANE_URL", "MLPLANE_API_KEY", "MLPLANE_TEAM", "MLPLANE_WEBHOOK_SECRET"]
    unset = [name for name in needed if not env.get(name)]
    if unset:
        parser.error(f"set {', '.join(unset)}")
    run = ci_run_from(args, env)
    headers = {"Authorization": f"Bearer {env['MLPLANE_API_KEY']}"}
    try:
        path, metrics = train(args.out, args.seed)
        with httpx.Client(base_url=env["MLPLANE_URL"], headers=headers, timeout=60.0) as api:
            artifact = upload(api, args.model, path)
            body = webhook_payload(args.model, run, artifact, metrics)
            status = announce(api, env["MLPLANE_TEAM"], env["MLPLANE_WEBHOOK_SECRET"], run, body)
            result: dict[str, Any] = {"model": args.model, "run_id": run.run_id}
            result |= {"webhook": status, "artifact": artifact, "metrics": metrics}
            if args.wait:
                version = wait_for_version(api, args.model, run, args.wait_timeout)
                result["version"] = version["version"]
    except (Refused, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
