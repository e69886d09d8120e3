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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from .conftest import REPO, SERVICES, clean_environment, free_port, own_database

DOCKERFILE = REPO / "docker" / "Dockerfile"
READY_WITHIN_S = 180.0
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


def _install_its_own_environment(service: str, venv: Path) -> None:
    """The target's package set alone in a fresh venv, as its build stage installs it."""
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


def _serves_only_its_service(service: str, venv: Path, workdir: Path) -> None:
    with own_database() as (_, database_url):
        _serve_until_ready(service, venv, database_url, workdir)
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


def _serve_until_ready(service: str, venv: Path, database_url: str, workdir: Path) -> None:
    port = free_port()
    log = workdir / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(venv / "bin" / "mlplane"), "serve", service],
            env=clean_environment(
                MLPLANE_ENV="dev",
                MLPLANE_DATABASE_URL=database_url,
                MLPLANE_DATA_DIR=str(workdir / "data"),
                MLPLANE_HTTP_PORT=str(port),
                MLPLANE_IDENTITY_SECRET="image-target-test-secret-0123456789abcdef",
                HOME=str(workdir / "data"),
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


@pytest.fixture(scope="module")
def environments(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Path, BaseException | None]]:
    """Every target's venv, installed at once: uv spends most of it waiting on files, which
    overlaps; starting the services stays one at a time (that is CPU, which does not)."""

    def attempt(service: str) -> tuple[Path, BaseException | None]:
        venv = tmp_path_factory.mktemp(service) / "venv"
        try:
            _install_its_own_environment(service, venv)
        except BaseException as failure:  # reported by the service's own case
            return venv, failure
        return venv, None

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(PRESENT, pool.map(attempt, PRESENT), strict=True))


@pytest.mark.parametrize("service", PRESENT)
def test_the_target_package_set_serves_its_service(
    service: str, environments: dict[str, tuple[Path, BaseException | None]], tmp_path: Path
) -> None:
    venv, failure = environments[service]
    if failure is not None:
        raise failure
    _serves_only_its_service(service, venv, tmp_path)
