"""The embedded platform end to end, driven over HTTP only as a `make run` user would.

A model artifact uploaded through the registry's signed URLs, a version registered;
then, with nobody calling anything else, the builder writes the image into an OCI
layout on the disk, the scanner runs Trivy on that layout, and the registry moves the
version to the stage the scan's verdict implies. Both hops are events on the
in-process bus, relayed from the services' outboxes.

Embedded mode has no vulnerability database, so every scan says vulnerabilities were
not assessed: the default policy blocks `prod` on that (the environment whose verdict
`image.scanned` carries) and allows `dev` and `staging`. A clean image therefore fails
in `prod` only, while an image carrying AWS credentials fails everywhere, the secrets
named in the reasons.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import stat
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import pytest

from .conftest import RunningPlatform

TEAM = "default"
"""The team of the initial admin key `make run` hands a newcomer."""
CHAIN_WITHIN_S = 90.0
POLL_S = 0.25
NOT_ASSESSED = (
    "vulnerabilities not assessed: no vulnerability database is cached and no "
    "db_repository is configured (policy {how} {environment})"
)
LINEAGE = {
    "git_repository": "https://git.example.com/acme/fraud",
    "commit_sha": "3f1c2a9b7d4e5f60718293a4b5c6d7e8f9012345",
    "ci_run_url": "https://ci.example.com/acme/fraud/runs/42",
    "git_ref": "refs/heads/main",
    "params": {"max_depth": "6"},
    "metrics": {"auc": 0.91},
}
# Split so no secret scanner flags this repository for made-up credentials.
FAKE_KEY_ID = "AKIA" + "Q3MLPLANEE2E7XYZ"
FAKE_SECRET = "k7Hq2Lm9Vx4Tb8Nw3Rz6Yc1" + "Pd5Fg0Sj/Ua+Ee2Ko"  # 40 characters, as AWS


@pytest.fixture(scope="module")
def admin_key(platform: RunningPlatform) -> str:
    """The initial admin key the first start wrote for a newcomer (owner-only file)."""
    path = platform.data_dir / "gateway" / "initial-admin-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return path.read_text().strip()


@pytest.fixture(scope="module")
def http(platform: RunningPlatform, admin_key: str) -> Iterator[httpx.Client]:
    """The gateway, called with the initial admin key as a newcomer would."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=platform.url, headers=headers, timeout=30.0) as client:
        yield client


def test_the_services_answer_only_through_the_gateway(
    platform: RunningPlatform, admin_key: str
) -> None:
    forged = {"X-Mlplane-Team": TEAM, "X-Mlplane-Principal": "user:mallory"}
    with httpx.Client(base_url=platform.url, timeout=30.0) as anonymous:
        direct = anonymous.get("/registry/models", headers=forged)
        policy = anonymous.put("/scanner/policies/prod", json={}, headers=forged)
        no_key = anonymous.get("/v1/registry/models")
    assert (direct.status_code, policy.status_code, no_key.status_code) == (401, 401, 401)
    assert admin_key not in platform.log.read_text()


@dataclass(frozen=True)
class Chain:
    """What the three services said about one version once its scan was recorded."""

    build: dict[str, Any]
    scan: dict[str, Any]
    version: dict[str, Any]


def _ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, (
        f"{answer.request.method} {answer.request.url} answered {answer.status_code}: "
        f"{answer.text[:1000]}"
    )
    return answer.json()


def _publish(http: httpx.Client, model: str, filename: str, content: bytes) -> dict[str, Any]:
    """Create `model`, upload `content` through the signed part URLs, register version 1."""
    _ok(http.post("/v1/registry/models", json={"name": model}), 201)
    sha256 = hashlib.sha256(content).hexdigest()
    plan = _ok(
        http.post(
            f"/v1/registry/models/{model}/uploads",
            json={"size_bytes": len(content), "sha256": sha256, "filename": filename},
        ),
        201,
    )
    uploaded = []
    offset = 0
    for part in plan["parts"]:
        chunk = content[offset : offset + part["size_bytes"]]
        offset += part["size_bytes"]
        # The URL carries its own signature: no team header, as CI would send it.
        put = httpx.put(part["url"], content=chunk, timeout=30.0)
        assert put.status_code == 200, f"part {part['number']}: {put.status_code} {put.text}"
        uploaded.append({"number": part["number"], "etag": put.headers["etag"]})
    assert offset == len(content), plan
    artifact: dict[str, Any] = _ok(
        http.post(
            f"/v1/registry/models/{model}/uploads/{plan['upload_id']}/complete",
            json={"parts": uploaded},
        )
    )
    assert artifact["size_bytes"] == len(content)
    assert artifact["sha256"] == sha256
    version = _ok(
        http.post(
            f"/v1/registry/models/{model}/versions",
            json={
                "framework": "sklearn",
                "artifact": {
                    "uri": artifact["uri"],
                    "size_bytes": artifact["size_bytes"],
                    "sha256": artifact["sha256"],
                    "media_type": "application/octet-stream",
                },
                "lineage": LINEAGE,
            },
        ),
        201,
    )
    assert version["version"] == 1
    assert version["lifecycle"]["stage"] == "registered"
    return artifact


def _await_chain(http: httpx.Client, platform: RunningPlatform, model: str) -> Chain:
    """Poll the three services until the registry records the scan of version 1.

    Fails at once on a failed build or an errored scan, and after `CHAIN_WITHIN_S`
    with everything seen so far and the platform's log tail.
    """
    deadline = time.monotonic() + CHAIN_WITHIN_S
    builds: list[dict[str, Any]] = []
    scans: list[dict[str, Any]] = []
    version: dict[str, Any] = {}

    def seen() -> str:
        return (
            f"builds: {json.dumps(builds, indent=1)}\nscans: {json.dumps(scans, indent=1)}\n"
            f"version lifecycle: {json.dumps(version.get('lifecycle'))}\n"
            f"platform log tail:\n{platform.log_tail()}"
        )

    while True:
        builds = _ok(http.get("/v1/builder/builds", params={"model": model}))["builds"]
        scans = [s for s in _ok(http.get("/v1/scanner/scans"))["scans"] if s["model"] == model]
        version = _ok(http.get(f"/v1/registry/models/{model}/versions/1"))
        if any(build["status"] == "failed" for build in builds):
            pytest.fail(f"the build of {model} v1 failed\n{seen()}")
        if any(scan["state"] == "done" and scan["verdict"] == "error" for scan in scans):
            pytest.fail(f"the scan of {model} v1 could not run\n{seen()}")
        if version["lifecycle"]["stage"] not in ("registered", "building", "built"):
            break
        if platform.process.poll() is not None:
            pytest.fail(f"mlplane up exited ({platform.process.returncode})\n{seen()}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"{model} v1 was not scanned within {CHAIN_WITHIN_S:g} s "
                f"(stage {version['lifecycle']['stage']})\n{seen()}"
            )
        time.sleep(POLL_S)

    assert len(builds) == 1, seen()
    build = builds[0]
    assert build["status"] == "succeeded", seen()
    digest = build["image_digest"]
    assert digest.startswith("sha256:"), seen()
    assert len(digest) == len("sha256:") + 64, seen()
    detail = _ok(http.get(f"/v1/scanner/scans/{digest}"))
    assert detail["digest"] == digest
    assert len(detail["scans"]) == 1, json.dumps(detail, indent=1)
    return Chain(build=build, scan=detail["scans"][0], version=version)


def _image_files(platform: RunningPlatform, build: dict[str, Any]) -> dict[str, bytes]:
    """The files of the image's layers, read from the OCI layout the builder wrote."""
    layout = platform.data_dir / "builder" / "images" / build["image_repository"]
    index = json.loads((layout / "index.json").read_text())
    named = {
        m["digest"]: m.get("annotations", {}).get("org.opencontainers.image.ref.name")
        for m in index["manifests"]
    }
    assert named.get(build["image_digest"]) == build["image_tag"], index

    def blob(digest: str) -> bytes:
        data: bytes = (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest.removeprefix("sha256:")
        return data

    manifest = json.loads(blob(build["image_digest"]))
    files: dict[str, bytes] = {}
    for layer in manifest["layers"]:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(layer["digest"])))) as tar:
            for member in tar.getmembers():
                extracted = tar.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    files["/" + member.name.lstrip("./")] = extracted.read()
    return files


def _report_exists(platform: RunningPlatform, uri: str) -> bool:
    """A `file://` URI naming a file under the platform's data directory."""
    parsed = urlparse(uri)
    path = Path(unquote(parsed.path))
    return (
        parsed.scheme == "file"
        and path.is_relative_to(platform.data_dir.resolve())
        and path.is_file()
    )


def test_a_registered_version_is_built_scanned_and_its_verdict_recorded(
    platform: RunningPlatform, http: httpx.Client
) -> None:
    model = "fraud"
    content = b"\x80\x04\x95sklearn-forest\x00" + bytes(range(256)) * 64
    artifact = _publish(http, model, "model.pkl", content)

    chain = _await_chain(http, platform, model)

    build = chain.build
    assert build["version"] == 1
    assert build["artifact_uri"] == artifact["uri"]
    assert build["artifact_sha256"] == artifact["sha256"]
    assert build["image_repository"] == f"mlplane/{TEAM}/{model}"
    assert build["image_tag"] == "v1"
    assert build["image"] == f"{build['image_repository']}@{build['image_digest']}"
    assert build["base_image"] is None  # no base configured: the model layer alone

    files = _image_files(platform, build)
    assert files == {f"/models/{model}/1/model.pkl": content}

    scan = chain.scan
    assert scan["image"] == build["image"]
    assert scan["state"] == "done"
    assert scan["verdict"] == "failed"
    assert scan["vulnerabilities_assessed"] is False
    assert scan["trivy_version"]
    assert scan["findings"] == []
    verdicts = scan["verdicts"]
    assert verdicts["prod"]["verdict"] == "failed"
    assert verdicts["prod"]["reasons"] == [NOT_ASSESSED.format(how="blocks", environment="prod")]
    for environment in ("dev", "staging"):
        assert verdicts[environment]["verdict"] == "passed", verdicts
        assert verdicts[environment]["reasons"] == [
            NOT_ASSESSED.format(how="allows", environment=environment)
        ]
    assert _report_exists(platform, scan["report_uri"]), scan["report_uri"]
    assert _report_exists(platform, scan["sbom_uri"]), scan["sbom_uri"]

    lifecycle = chain.version["lifecycle"]
    assert lifecycle["stage"] == "scanned"
    assert lifecycle["scan_verdict"] == "failed"
    assert lifecycle["image"] == build["image"]
    assert lifecycle["build_failure"] is None
    assert lifecycle["deployed_environments"] == []

    log = platform.log.read_text()
    assert "in-process bus" in log, platform.log_tail()
    for service in ("registry", "builder", "scanner"):
        assert f"hosting service {service}:" in log, platform.log_tail()


def test_a_version_carrying_aws_credentials_fails_its_scan_on_the_secrets(
    platform: RunningPlatform, http: httpx.Client
) -> None:
    model = "fraud-leaky"
    # A model bundle that baked the training job's credentials into its config.
    content = (
        "[model]\nestimator = RandomForestClassifier\nn_estimators = 200\n\n"
        "[storage]\n"
        f"aws_access_key_id = {FAKE_KEY_ID}\n"
        f"aws_secret_access_key = {FAKE_SECRET}\n"
    ).encode()
    _publish(http, model, "model.cfg", content)

    chain = _await_chain(http, platform, model)

    target = f"/models/{model}/1/model.cfg"
    assert _image_files(platform, chain.build) == {target: content}
    scan = chain.scan
    assert scan["image"] == chain.build["image"]
    assert scan["verdict"] == "failed"
    secrets = sorted(
        (finding["id"], finding["target"])
        for finding in scan["findings"]
        if finding["kind"] == "secret"
    )
    assert secrets == [
        ("aws-access-key-id", target),
        ("aws-secret-access-key", target),
    ], scan["findings"]
    secret_reasons = [
        f"secret aws-access-key-id in {target}",
        f"secret aws-secret-access-key in {target}",
    ]
    verdicts = scan["verdicts"]
    assert verdicts["prod"]["verdict"] == "failed"
    assert verdicts["prod"]["reasons"] == [
        NOT_ASSESSED.format(how="blocks", environment="prod"),
        *secret_reasons,
    ]
    # Where the missing database alone would pass, the secrets still fail the image.
    for environment in ("dev", "staging"):
        assert verdicts[environment]["verdict"] == "failed", verdicts
        assert verdicts[environment]["reasons"] == [
            NOT_ASSESSED.format(how="allows", environment=environment),
            *secret_reasons,
        ]
    assert verdicts["prod"]["counts"]["critical"] == 2, verdicts["prod"]

    lifecycle = chain.version["lifecycle"]
    assert lifecycle["stage"] == "scanned"
    assert lifecycle["scan_verdict"] == "failed"
    assert lifecycle["image"] == chain.build["image"]


def test_the_deployer_commits_a_scanned_version_and_stops_at_committed(
    platform: RunningPlatform, http: httpx.Client
) -> None:
    # Run last: it relaxes the team's prod scan policy (no vulnerability database here).
    failed_before = http.post(
        "/v1/deployer/deployments", json={"model": "fraud", "version": 1, "environment": "dev"}
    )
    assert failed_before.status_code == 409, failed_before.text
    assert [r["code"] for r in failed_before.json()["reasons"]] == ["scan_not_passed"]
    _ok(
        http.put(
            "/v1/scanner/policies/prod",
            json={"max_severity": "high", "block_when_vulnerabilities_not_assessed": False},
        )
    )
    model = "churn"
    _publish(http, model, "model.pkl", b"\x80\x04\x95churn\x00" + bytes(range(256)) * 8)
    chain = _await_chain(http, platform, model)
    assert chain.scan["verdict"] == "passed", chain.scan
    body = {"model": model, "version": 1, "environment": "dev"}
    deadline = time.monotonic() + 60
    while True:  # the deployer learns the verdict from image.scanned, a moment later
        asked = http.post("/v1/deployer/deployments", json=body)
        if asked.status_code != 409 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    created = _ok(asked, 201)
    while True:
        read = _ok(http.get(f"/v1/deployer/deployments/{created['id']}"))
        if read["phase"] != "pending" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert read["phase"] == "committed", json.dumps(read, indent=1) + platform.log_tail()
    assert "no cluster is configured" in read["message"]
    remote = platform.data_dir / "deployer" / "gitops.git"
    subject = subprocess.run(
        ["git", "-C", str(remote), "log", "-1", "--format=%s", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert subject == f"deploy {TEAM}/{model} v1 to dev"
    assert "hosting service deployer:" in platform.log.read_text(), platform.log_tail()
