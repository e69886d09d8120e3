"""The README's five-minute walkthrough, run as written against `make run`'s platform.

The walkthrough is the part of README.md between its `--8<-- [start:walkthrough]` and
`[end:walkthrough]` markers (the docs site includes the same lines). Its first `bash`
block must be `make run`, which this test runs as the e2e suite does (`mlplane up`, the
command the Makefile's `run` target runs, on a free port, with a throwaway database
instead of the embedded PostgreSQL); every later `bash` block is the second terminal's,
run unchanged by one `bash -e -o pipefail` in a directory laid out like the checkout:
its `.venv`, and the platform's `.data`. Only `MLPLANE_URL` (which the walkthrough
honours) and the CLI's profile and state directories differ from a person's shell.

Then the outcomes are checked where they live: the version built and scanned, the
deployment committed to dev and rolled back by a `drift.detected`, the drift report,
and the deploy and revert commits in the GitOps repository.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import REPO, RunningPlatform, running_platform

README = REPO / "README.md"
START = "--8<-- [start:walkthrough]"
END = "--8<-- [end:walkthrough]"
WALKTHROUGH_WITHIN_S = 300
# The first test's setup starts the platform and runs the whole walkthrough.
pytestmark = pytest.mark.timeout(WALKTHROUGH_WITHIN_S + 240)
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def walkthrough_blocks(readme: str) -> list[str]:
    """The `bash` code blocks between the walkthrough's markers, in order."""
    start, end = readme.find(START), readme.find(END)
    assert 0 <= start < end, f"README.md has no {START} ... {END} section"
    return [block.strip() for block in BASH_BLOCK.findall(readme[start:end])]


def test_the_walkthrough_starts_the_platform_with_make_run() -> None:
    blocks = walkthrough_blocks(README.read_text())
    assert blocks[0] == "make run"
    # What the test starts in its place: the run target's command, as the Makefile says.
    recipe = re.search(r"^run:.*\n\t(.+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert recipe is not None
    assert recipe.group(1).strip() == "$(VENV)/bin/mlplane up"


@pytest.fixture(scope="module")
def platform(
    platform_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    yield from running_platform(platform_database, tmp_path_factory)


def _second_terminal(platform: RunningPlatform, home: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLANE_", "VIRTUAL_ENV"))}
    return {
        **clean,
        "MLPLANE_URL": platform.url,
        "MLPLANE_CONFIG_DIR": str(home / "config"),
        "MLPLANE_STATE_DIR": str(home / "state"),
        "COLUMNS": "200",  # tables as wide as a terminal, so grep sees whole rows
    }


@pytest.fixture(scope="module")
def walked(
    platform: RunningPlatform, tmp_path_factory: pytest.TempPathFactory
) -> subprocess.CompletedProcess[str]:
    """The second terminal's commands, run once as written; their output."""
    (platform.workdir / ".venv").symlink_to(REPO / ".venv")
    script = "\n".join(walkthrough_blocks(README.read_text())[1:])
    try:
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=platform.workdir,
            env=_second_terminal(platform, tmp_path_factory.mktemp("walkthrough-home")),
            capture_output=True,
            text=True,
            timeout=WALKTHROUGH_WITHIN_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"the walkthrough did not finish within {WALKTHROUGH_WITHIN_S} s:\n"
            f"{exc.stdout!s}\n{exc.stderr!s}\n{platform.log_tail()}"
        )
    assert done.returncode == 0, (
        f"the walkthrough failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
        f"{platform.log_tail()}"
    )
    return done


@pytest.fixture(scope="module")
def http(platform: RunningPlatform) -> Iterator[httpx.Client]:
    key = (platform.data_dir / "gateway" / "initial-admin-key").read_text().strip()
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=f"{platform.url}/v1", headers=headers, timeout=30.0) as client:
        yield client


def _get(http: httpx.Client, path: str, **params: Any) -> Any:
    answer = http.get(path, params=params)
    assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text}"
    return answer.json()


def test_the_uploaded_version_is_built_and_scanned(
    walked: subprocess.CompletedProcess[str], http: httpx.Client
) -> None:
    assert "registered fraud version 1" in walked.stdout
    version = _get(http, "/registry/models/fraud/versions/1")
    assert version["lineage"]["commit_sha"] == "5e1c2a9b7d4e5f60718293a4b5c6d7e8f9012345"
    assert version["lifecycle"]["image"]
    assert version["lifecycle"]["scan_verdict"] == "passed"


def test_the_deployment_to_dev_was_committed_then_rolled_back_on_drift(
    walked: subprocess.CompletedProcess[str], http: httpx.Client
) -> None:
    listed = _get(http, "/deployer/deployments", model="fraud")["deployments"]
    assert [(d["environment"], d["phase"]) for d in listed] == [("dev", "rolled_back")]
    shown = _get(http, f"/deployer/deployments/{listed[0]['id']}")
    phases = [h.get("phase") for h in shown["history"] if h.get("phase")]
    assert phases[:2] == ["pending", "committed"], shown["history"]
    assert phases[-1] == "rolled_back", shown["history"]
    causes = [h["caused_by"] for h in shown["history"] if h["kind"] == "rollback_requested"]
    assert len(causes) == 1, shown["history"]
    assert causes[0].startswith("drift:"), shown["history"]
    # The walkthrough's last block printed that history.
    assert causes[0] in walked.stdout


def test_the_drift_report_found_the_window_drifted(
    walked: subprocess.CompletedProcess[str], http: httpx.Client
) -> None:
    reports = _get(http, "/drift/models/fraud/reports")["reports"]
    drifted = [r for r in reports if r["environment"] == "dev" and r["dataset_drifted"]]
    assert drifted, reports
    assert drifted[0]["alert_fired"], drifted
    assert drifted[0]["id"] in walked.stdout  # `mlplane drift reports fraud` listed it


def test_the_gitops_repository_holds_the_deploy_and_its_revert(
    walked: subprocess.CompletedProcess[str], platform: RunningPlatform
) -> None:
    log = subprocess.run(
        [
            "git",
            "-C",
            str(platform.data_dir / "deployer" / "gitops.git"),
            "log",
            "--format=%B%x00",
            "main",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    messages = [m.strip() for m in log.split("\x00") if m.strip()]
    assert len(messages) == 2, messages
    rollback, deploy = messages
    assert deploy.startswith("deploy default/fraud v1 to dev")
    assert "Mlplane-Action: rollback" in rollback
    assert "Mlplane-Requested-By: drift:" in rollback
