"""`mlplane up --processes`: each service its own process on real RabbitMQ, one platform.

Run as a person would: the console script, an embedded PostgreSQL in a temporary data
directory, RabbitMQ in a virtual host of the test's own (the services' queue names are
the platform's, so they must not meet another run's).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlplane_sdk.cli.processes import plan_children
from mlplane_testing.rabbitmq_vhost import rabbitmq_vhost

MLPLANE = Path(sys.executable).parent / "mlplane"
DEFAULT_TEST_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
START_WITHIN_S = 240.0
STOP_WITHIN_S = 90.0


def test_plan_points_the_gateway_at_each_service_and_keeps_configured_ones() -> None:
    plans = plan_children(
        ["builder", "gateway", "registry"],
        environment={"MLPLANE_GATEWAY_BUILDER_URL": "http://elsewhere:1"},
        host="0.0.0.0",
        gateway_port=9000,
        database_url="postgresql+asyncpg://db/x",
    )
    by_service = {plan.service: plan for plan in plans}
    gateway = by_service["gateway"].environment
    assert gateway["MLPLANE_HTTP_PORT"] == "9000"
    assert gateway["MLPLANE_GATEWAY_REGISTRY_URL"] == "http://127.0.0.1:9001"
    assert gateway["MLPLANE_GATEWAY_BUILDER_URL"] == "http://elsewhere:1"
    assert by_service["builder"].environment["MLPLANE_HTTP_PORT"] == "9002"
    assert {p.environment["MLPLANE_DATABASE_URL"] for p in plans} == {"postgresql+asyncpg://db/x"}
    assert "MLPLANE_GATEWAY_REGISTRY_URL" not in by_service["registry"].environment


def test_plan_points_the_deployer_at_the_scanner_for_manifest_scans() -> None:
    plans = plan_children(
        ["gateway", "scanner", "deployer"],
        environment={},
        host="127.0.0.1",
        gateway_port=9000,
        database_url="postgresql+asyncpg://db/x",
    )
    by_service = {plan.service: plan for plan in plans}
    deployer = by_service["deployer"].environment
    assert deployer["MLPLANE_DEPLOYER_SCANNER_URL"] == "http://127.0.0.1:9003"
    assert "MLPLANE_DEPLOYER_SCANNER_URL" not in by_service["scanner"].environment
    configured = plan_children(
        ["scanner", "deployer"],
        environment={"MLPLANE_DEPLOYER_SCANNER_URL": "http://scanner.example:1"},
        host="127.0.0.1",
        gateway_port=9000,
        database_url="postgresql+asyncpg://db/x",
    )
    assert {p.environment["MLPLANE_DEPLOYER_SCANNER_URL"] for p in configured} == {
        "http://scanner.example:1"
    }


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory outside pytest's own temporary root: pytest resets that root to
    mode 0700 whenever a pytest session starts, and the embedded PostgreSQL runs as a
    user of its own that must reach its directory until it has stopped."""
    directory = Path(tempfile.mkdtemp(prefix="mlplane-up-"))
    yield directory / "data"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def vhost_amqp_url() -> Iterator[str]:
    with rabbitmq_vhost() as url:
        yield url


def _free_port_run(width: int = 6) -> int:
    """A port with the `width` ports after it free too (the layout's six services)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base: int = probe.getsockname()[1]
        if base + width > 65535:
            continue
        try:
            for port in range(base, base + width):
                with socket.socket() as taken:
                    taken.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no run of free ports")


def _environment(**settings: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLANE_", "TRIVY_"))}
    return {**clean, "PYTHONUNBUFFERED": "1", **settings}


async def _read_until_announced(process: asyncio.subprocess.Process, lines: list[str]) -> str:
    assert process.stdout is not None
    while line := (await process.stdout.readline()).decode():
        lines.append(line)
        if line.startswith("mlplane is serving on"):
            return line
    raise AssertionError("mlplane up --processes stopped before serving:\n" + "".join(lines[-40:]))


async def _launch(*, merged: bool, **settings: str) -> asyncio.subprocess.Process:
    """`mlplane up --processes` with `settings`; stderr into stdout when `merged`."""
    return await asyncio.create_subprocess_exec(
        str(MLPLANE),
        "up",
        "--processes",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merged else asyncio.subprocess.PIPE,
        env=_environment(**settings),
    )


async def test_each_service_runs_as_its_own_process_behind_the_gateway(
    data_dir: Path, vhost_amqp_url: str
) -> None:
    port = _free_port_run()
    process = await _launch(
        merged=True,
        MLPLANE_DATA_DIR=str(data_dir),
        MLPLANE_HTTP_PORT=str(port),
        MLPLANE_AMQP_URL=vhost_amqp_url,
    )
    lines: list[str] = []
    try:
        announced = await asyncio.wait_for(_read_until_announced(process, lines), START_WITHIN_S)
        key = (data_dir / "gateway" / "initial-admin-key").read_text().strip()
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30.0,
        ) as http:
            models = await http.get("/v1/registry/models")
            deployments = await http.get("/v1/deployer/deployments")
        # A service's own port answers too, and refuses a caller the gateway did not sign.
        async with httpx.AsyncClient(timeout=30.0) as http:
            direct = await http.get(f"http://127.0.0.1:{port + 1}/registry/models")

        process.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(process.communicate(), STOP_WITHIN_S)
        lines.append(rest.decode())
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    output = "".join(lines)
    assert announced.startswith(f"mlplane is serving on http://127.0.0.1:{port} ("), output
    assert f"registry on :{port + 1}" in announced
    assert models.status_code == 200, models.text
    assert models.json() == {"models": []}
    assert deployments.status_code == 200, deployments.text
    assert direct.status_code == 401
    # Each service's lines carry its name, and the gateway's request reached the registry.
    assert "registry | " in output
    assert "GET /registry/models 200" in output
    assert process.returncode == 0, output[-3000:]
    # Every child stopped (their ports are free again) and so did the embedded PostgreSQL.
    for service_port in range(port, port + 4):
        with socket.socket() as probe:
            # Reuse: closed connections linger in TIME_WAIT; only a listener refuses this.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", service_port))
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


async def test_without_rabbitmq_it_says_what_to_set(tmp_path: Path) -> None:
    process = await _launch(merged=False, MLPLANE_DATA_DIR=str(tmp_path))
    _, stderr = await asyncio.wait_for(process.communicate(), STOP_WITHIN_S)
    assert process.returncode == 1
    assert stderr.decode().startswith(
        "error: mlplane up --processes needs RabbitMQ: set MLPLANE_AMQP_URL"
    )


async def test_a_service_that_cannot_start_stops_the_others(
    data_dir: Path, vhost_amqp_url: str
) -> None:
    port = _free_port_run()
    process = await _launch(
        merged=False,
        MLPLANE_DATA_DIR=str(data_dir),
        MLPLANE_HTTP_PORT=str(port),
        MLPLANE_AMQP_URL=vhost_amqp_url,
        # The deployer refuses this setting at start.
        MLPLANE_DEPLOYER_GITOPS_PUSH_ATTEMPTS="0",
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), START_WITHIN_S)
    assert process.returncode == 1
    assert "error: deployer stopped with exit code 1: stopping the others" in stderr.decode()
    assert "MLPLANE_DEPLOYER_GITOPS_PUSH_ATTEMPTS" in stdout.decode()
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), stderr.decode()
