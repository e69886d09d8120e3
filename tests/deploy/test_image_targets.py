"""Each image target's package set, installed alone from the lock, serves its service.

No Docker engine runs here, so the images are not built. What an image would hold is:
the packages its build stage installs in docker/Dockerfile (editable, from the source
tree kept in the image), constrained by requirements.lock. This installs exactly those
into a fresh virtual environment (uv, from its cache) and runs the image's command,
`mlplane serve <service>`, from it: a missing package, or migrations not found beside
the installed code, fails here as it would in the container.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from .conftest import REPO, SERVICES, clean_environment, free_port

DOCKERFILE = REPO / "docker" / "Dockerfile"
READY_WITHIN_S = 90.0
# The targets whose service is in this checkout (drift's package may land later).
PRESENT = [s for s in SERVICES if (REPO / "services" / s / "pyproject.toml").exists()]


def _uv() -> str:
    found = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    assert Path(found).exists(), "uv is missing (make install installs it)"
    return found


def installed_paths(target: str) -> list[str]:
    """The local packages the `build` stage and `build-<target>` stage install, in order."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)
    paths: list[str] = []
    for stage in stages:
        name = stage.split("\n", 1)[0].split(" AS ")[-1].strip()
        if name not in ("build", f"build-{target}"):
            continue
        for line in stage.splitlines():
            if "pip install" in line:
                # Every local package is installed editable: its migrations stay beside it.
                assert re.findall(r"(?<!-e )\./(?:libs|services)/", line) == [], line
                paths += re.findall(r"-e (\./\S+)", line)
    return paths


def test_the_build_stages_install_the_service_with_the_libs_it_needs() -> None:
    assert installed_paths("registry") == [
        "./libs/contracts",
        "./libs/runtime",
        "./libs/sdk",
        "./services/registry",
    ]
    assert "./libs/oci" in installed_paths("builder")


@pytest.mark.parametrize("service", PRESENT)
def test_the_target_package_set_serves_its_service(
    service: str, database: tuple[str, str], tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    environment = {**os.environ, "UV_SYSTEM_CERTS": "1"}
    subprocess.run(
        [_uv(), "venv", "-q", "--python", "3.11", str(venv)],
        check=True,
        timeout=120,
        env=environment,
    )
    install = subprocess.run(
        [_uv(), "pip", "install", "-q", "--python", str(venv / "bin" / "python")]
        + ["-c", "requirements.lock"]
        + [arg for path in installed_paths(service) for arg in ("-e", path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    _, database_url = database
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(venv / "bin" / "mlplane"), "serve", service],
            env=clean_environment(
                MLPLANE_ENV="dev",
                MLPLANE_DATABASE_URL=database_url,
                MLPLANE_DATA_DIR=str(tmp_path / "data"),
                MLPLANE_HTTP_PORT=str(port),
                MLPLANE_IDENTITY_SECRET="image-target-test-secret-0123456789abcdef",
                HOME=str(tmp_path / "data"),
                # Configured as compose and deploy/ configure it: the deployer's image
                # holds no scanner, and refuses to start not knowing where one is.
                **(
                    {"MLPLANE_DEPLOYER_SCANNER_URL": "http://scanner:8083"}
                    if service == "deployer"
                    else {}
                ),
            ),
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + READY_WITHIN_S
        while True:
            assert process.poll() is None, log.read_text()[-4000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.3)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0, log.read_text()[-4000:]
    # Only this service is installed: the image serves nothing else.
    listed = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; "
            "print(sorted(e.name for e in m.entry_points(group='mlplane.services')))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert listed.stdout.strip() == repr([service])
