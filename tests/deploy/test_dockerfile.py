"""docker/Dockerfile: hadolint finds nothing, and each service's target has the shape asked of it.

No Docker engine runs here, so the images are not built; what can be checked without
one is: the linter, one target per service with its command and port, a non-root
user, a health check, and that the build installs from the committed lock.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from mlplane_runtime.platform.ports import default_port

from .conftest import REPO, SERVICES

DOCKERFILE = REPO / "docker" / "Dockerfile"
HADOLINT = REPO / ".venv" / "bin" / "hadolint"


def _stages() -> dict[str, list[str]]:
    """Target name -> its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)$", line, re.IGNORECASE)
        if match:
            current = stages.setdefault(match.group(1), [line])
            continue
        current.append(line)
    return stages


def test_hadolint_finds_nothing_at_any_level() -> None:
    done = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "info", "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_does_fail_on_a_bad_dockerfile(tmp_path: Path) -> None:
    # The linter really runs: a root image with an unpinned apt install is refused.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get install curl\n")
    done = subprocess.run(
        [str(HADOLINT), "--no-color", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "DL3007" in done.stdout  # latest tag
    assert "DL3008" in done.stdout  # unpinned apt package


def test_each_service_has_a_target_running_it_non_root_with_a_health_check() -> None:
    stages = _stages()
    runtime = stages["runtime"]
    assert "USER 10001:10001" in runtime
    assert any(i.startswith("HEALTHCHECK") and "/readyz" in i for i in runtime)
    assert 'ENTRYPOINT ["mlplane"]' in runtime
    assert 'VOLUME ["/var/lib/mlplane"]' in runtime
    for service in SERVICES:
        target = stages[service]
        assert target[0].endswith(f"runtime AS {service}"), target[0]
        assert f'CMD ["serve", "{service}"]' in target
        assert f"EXPOSE {default_port(service)}" in target
        assert any(
            i.startswith("ENV MLPLANE_HTTP_PORT=") and f"={default_port(service)}" in i
            for i in target
        )
        # Whatever a target does as root, it ends as the unprivileged user.
        users = [i for i in target if i.startswith("USER ")]
        assert not users or users[-1] == "USER 10001:10001", service
        build = stages[f"build-{service}"]
        assert any(f"./services/{service}" in i for i in build), service
    assert 'CMD ["migrate"]' in stages["migrate"]


def test_the_build_installs_from_the_committed_lock() -> None:
    build = _stages()["build"]
    assert "COPY requirements.lock ./" in build
    assert "ENV PIP_CONSTRAINT=/opt/mlplane/src/requirements.lock" in build
