"""The `mlplane` CLI against a running `make run` platform, as a person would use it.

Each command runs as the installed console script with its own config and state
directories: sign in, upload (and resume an interrupted upload), follow a version
through build and scan, aliases, deploy, roll back, scans and exceptions, events,
dead letters; `-o json` where a program would read the answer, and the documented
exit codes where it fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlplane_sdk.upload_state import UploadState, upload_key

from .conftest import MLPLANE, RunningPlatform

MODEL = "cli-model"
LINEAGE = [
    "--repository",
    "https://git.example.com/acme/cli",
    "--commit",
    "5e1c2a9b7d4e5f60718293a4b5c6d7e8f9012345",
    "--ci-run-url",
    "https://ci.example.com/acme/cli/runs/7",
]
WITHIN_S = 120.0


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Cli:
    """The console script with this test's own profile and upload-state directories."""

    home: Path

    def environment(self) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MLPLANE_")}
        return {
            **clean,
            "MLPLANE_CONFIG_DIR": str(self.home / "config"),
            "MLPLANE_STATE_DIR": str(self.home / "state"),
            "COLUMNS": "200",
        }

    def __call__(self, *args: str, ok: bool = True) -> Ran:
        done = subprocess.run(
            [str(MLPLANE), *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        ran = Ran(done.returncode, done.stdout, done.stderr)
        if ok:
            assert ran.code == 0, f"mlplane {' '.join(args)} -> {ran.code}\n{ran.stderr}"
        return ran


@pytest.fixture(scope="module")
def admin_key(platform: RunningPlatform) -> str:
    return (platform.data_dir / "gateway" / "initial-admin-key").read_text().strip()


@pytest.fixture(scope="module")
def cli(platform: RunningPlatform, admin_key: str, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    cli = Cli(tmp_path_factory.mktemp("cli-home"))
    signed_in = cli("login", "--url", platform.url, "--api-key", admin_key)
    assert "signed in to" in signed_in.stdout
    return cli


@pytest.fixture(scope="module")
def http(platform: RunningPlatform, admin_key: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=platform.url, headers=headers, timeout=30.0) as client:
        yield client


def _artifact(directory: Path, name: str, size: int, seed: bytes) -> Path:
    path = directory / name
    block = hashlib.sha256(seed).digest() * 4096  # 128 KiB of bytes no one else uploads
    path.write_bytes((block * (size // len(block) + 1))[:size])
    return path


def test_login_keeps_the_key_for_the_owner_only(cli: Cli, platform: RunningPlatform) -> None:
    path = cli.home / "config" / "profiles.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    listed = cli("profiles", "list", "-o", "json").json()
    assert listed == {
        "current": "default",
        "profiles": [{"name": "default", "url": platform.url, "has_key": True}],
    }


def test_failures_are_one_line_with_their_exit_code(cli: Cli, platform: RunningPlatform) -> None:
    refused = cli("login", "--url", platform.url, "--api-key", "mlp_not-a-key", ok=False)
    assert refused.code == 4
    assert refused.stderr.startswith("error: the platform refused the key")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    unreachable = cli("--url", f"http://127.0.0.1:{closed}", "models", "list", ok=False)
    assert unreachable.code == 3
    assert unreachable.stderr.startswith("error: cannot reach mlplane")

    missing = cli("versions", "show", "no-such-model", "1", ok=False)
    assert missing.code == 5
    assert missing.stderr.count("\n") == 1
    assert "Traceback" not in missing.stderr


def test_upload_registers_a_version_with_its_lineage(cli: Cli, tmp_path: Path) -> None:
    file = _artifact(tmp_path, "model.pkl", 3 * 2**20 + 17, b"registered")
    answer = cli("upload", str(file), "-m", MODEL, "--register", *LINEAGE, "-o", "json").json()
    assert answer["artifact"]["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert answer["artifact"]["size_bytes"] == file.stat().st_size
    assert answer["version"]["version"] == 1

    shown = cli("versions", "show", MODEL, "1")
    assert "5e1c2a9b7d4e5f60718293a4b5c6d7e8f9012345" in shown.stdout
    listed = cli("versions", "list", MODEL, "-o", "json").json()
    assert [v["version"] for v in listed["versions"]] == [1]
    # Nothing is left to resume once an upload completed.
    assert not list((cli.home / "state" / "uploads").glob("*.json"))


def test_an_interrupted_upload_resumes_with_the_parts_it_lacks(
    cli: Cli, platform: RunningPlatform, http: httpx.Client, tmp_path: Path
) -> None:
    part = 5 * 2**20
    file = _artifact(tmp_path, "big.bin", 2 * part + 123, b"resumed")
    content = file.read_bytes()
    sha256 = hashlib.sha256(content).hexdigest()
    # What an interrupted run leaves: a plan, and its first part stored.
    plan = http.post(
        f"/v1/registry/models/{MODEL}/uploads",
        json={
            "size_bytes": len(content),
            "sha256": sha256,
            "filename": file.name,
            "part_size": part,
        },
    ).json()
    first = plan["parts"][0]
    stored = httpx.put(first["url"], content=content[:part], timeout=30.0)
    assert stored.status_code == 200, stored.text
    os.environ["MLPLANE_STATE_DIR"] = str(cli.home / "state")
    try:
        state = UploadState(upload_key(platform.url, MODEL, file), sha256, len(content))
        state.new_plan(plan)
        state.etags[1] = stored.headers["etag"]
        state.save()
        saved = state.path
    finally:
        del os.environ["MLPLANE_STATE_DIR"]

    resumed = cli("upload", str(file), "-m", MODEL, "--parallel", "2")

    assert "resuming: 1 part(s) already uploaded" in resumed.stderr
    assert f"sha256 {sha256}" in resumed.stdout
    assert not saved.exists()


def _wait_for(what: str, check: Any) -> Any:
    deadline = time.monotonic() + WITHIN_S
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"{what} did not happen within {WITHIN_S:g} s")


def test_aliases_and_the_events_they_raise(cli: Cli) -> None:
    tail = subprocess.Popen(
        [
            str(MLPLANE),
            "events",
            "tail",
            "-t",
            "io.mlplane.model.alias",
            "--count",
            "1",
            "-o",
            "json",
        ],
        env=cli.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)  # the stream is open before the change it should see
        cli("aliases", "set", MODEL, "champion", "1")
        out, err = tail.communicate(timeout=60)
    finally:
        if tail.poll() is None:
            tail.kill()
    assert tail.returncode == 0, err
    event = json.loads(out.strip().splitlines()[-1])
    assert event["type"] == "io.mlplane.model.alias.changed.v1"
    assert cli("aliases", "show", MODEL, "champion", "-o", "json").json()["alias"]["version"] == 1


def test_a_version_is_deployed_and_rolled_back_from_the_cli(cli: Cli, http: httpx.Client) -> None:
    # Embedded mode has no vulnerability database: let prod's verdict pass unassessed images.
    relaxed = http.put(
        "/v1/scanner/policies/prod",
        json={"max_severity": "high", "block_when_vulnerabilities_not_assessed": False},
    )
    assert relaxed.status_code == 200, relaxed.text
    file = _artifact(Path(cli.home), "deployable.pkl", 64 * 1024, b"deployable")
    cli("upload", str(file), "-m", "cli-deploy", "--register", *LINEAGE)

    def scanned() -> dict[str, Any] | None:
        version = cli("versions", "show", "cli-deploy", "1", "-o", "json").json()
        return version if version["lifecycle"]["scan_verdict"] == "passed" else None

    version = _wait_for("the scan", scanned)
    digest = version["lifecycle"]["image"].split("@")[-1]
    scans = cli("scans", "show", digest, "-o", "json").json()
    assert scans["scans"][0]["verdict"] == "passed"

    def deployed() -> dict[str, Any] | None:
        ran = cli("deploy", "cli-deploy", "--version", "1", "--env", "dev", "-o", "json", ok=False)
        return ran.json() if ran.code == 0 else None

    deployment = _wait_for("the deployer to accept it", deployed)

    def committed() -> dict[str, Any] | None:
        shown = cli("deployments", "show", deployment["id"], "-o", "json").json()
        return shown if shown["phase"] == "committed" else None

    _wait_for("the GitOps commit", committed)
    history = cli("deployments", "show", deployment["id"])
    assert "committed" in history.stdout
    listed = cli("deployments", "list", "--model", "cli-deploy", "-o", "json").json()
    assert [d["id"] for d in listed["deployments"]] == [deployment["id"]]

    rolled = cli("rollback", deployment["id"], "-o", "json").json()
    assert rolled["id"] == deployment["id"]


def test_scan_exceptions_are_added_listed_and_removed(cli: Cli) -> None:
    cli(
        "exceptions",
        "add",
        "CVE-2024-0001",
        "--env",
        "staging",
        "--owner",
        "sec@acme",
        "--reason",
        "not reachable",
        "--expires",
        "2030-01-01T00:00:00+00:00",
    )
    listed = cli("exceptions", "list", "--env", "staging", "-o", "json").json()
    assert [e["finding_id"] for e in listed["exceptions"]] == ["CVE-2024-0001"]
    cli("exceptions", "remove", "CVE-2024-0001", "--env", "staging")
    after = cli("exceptions", "list", "--env", "staging", "-o", "json").json()
    assert after["exceptions"] == []


def test_dead_letters_are_empty_on_a_healthy_platform(cli: Cli) -> None:
    answer = cli("dead-letters", "list", "-s", "registry", "-o", "json").json()
    assert answer["dead_letters"] == []
