"""The compose file's commands, run as processes with its environment adapted to localhost.

For the migrations job, the registry and the gateway: the compose service's own
command (the image's entrypoint `mlplane` + `command`) and its own environment, with
only the addresses changed from the compose network's to this machine's test servers
(a throwaway database, a RabbitMQ virtual host of the test's own, the test S3 server
with a bucket of its own, Redis) and the data directory moved off /var/lib/mlplane.
Every other variable goes in as compose sets it, so a setting the services refuse
fails here. Each service must answer /readyz with 200, then stop cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import httpx
import pytest
from mlplane_testing.s3_server import (  # noqa: F401 (a fixture: the real S3 server)
    S3Endpoint,
    delete_bucket,
    s3_endpoint,
    unique_bucket,
)

from .conftest import MLPLANE, clean_environment, free_port
from .test_compose import compose

READY_WITHIN_S = 90.0
STOP_WITHIN_S = 30.0
_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's `${NAME:-default}` with nothing set: the default (here, no .env file)."""
    return _VARIABLE.sub(lambda m: m.group(2) or "", value)


def compose_environment(service: str) -> dict[str, str]:
    raw = compose()["services"][service]["environment"]
    return {key: interpolate(str(value)) for key, value in raw.items()}


def compose_command(service: str) -> list[str]:
    # docker/Dockerfile's ENTRYPOINT is ["mlplane"]; compose gives the arguments.
    return [str(MLPLANE), *compose()["services"][service]["command"]]


@pytest.fixture
def vhost_amqp_url() -> Iterator[str]:
    """An AMQP URL on a virtual host of this test's own (its queues meet no one's)."""
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    name = f"t_{uuid4().hex[:10]}"
    base = urlsplit(os.environ.get("MLPLANE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    subprocess.run([ctl, "-q", "add_vhost", name], check=True, timeout=60)
    try:
        subprocess.run(
            [ctl, "-q", "set_permissions", "-p", name, base.username or "guest", ".*", ".*", ".*"],
            check=True,
            timeout=60,
        )
        yield urlunsplit(base._replace(path=f"/{name}"))
    finally:
        subprocess.run([ctl, "-q", "delete_vhost", name], check=False, timeout=60)


@pytest.fixture
def bucket(s3_endpoint: S3Endpoint) -> Iterator[str]:  # noqa: F811
    name = unique_bucket("compose")
    yield name
    asyncio.run(delete_bucket(s3_endpoint, name))


def localhost(
    environment: dict[str, str],
    *,
    database_url: str,
    amqp_url: str,
    data_dir: Path,
    port: int,
    s3: S3Endpoint | None = None,
    bucket: str | None = None,
) -> dict[str, str]:
    """The compose environment with the compose network's addresses replaced by this machine's."""
    adapted = dict(environment)
    assert adapted.pop("MLPLANE_OTLP_ENDPOINT") == "http://tempo:4318"  # no Tempo here
    replaced = {
        "MLPLANE_DATABASE_URL": database_url,
        "MLPLANE_AMQP_URL": amqp_url,
        "MLPLANE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "MLPLANE_DATA_DIR": str(data_dir),
        "MLPLANE_HTTP_HOST": "127.0.0.1",
    }
    for key, value in replaced.items():
        assert key in adapted, key
        adapted[key] = value
    # Compose sets the port only where it is not the image's (docker/Dockerfile ENV).
    adapted["MLPLANE_HTTP_PORT"] = str(port)
    for key in [k for k in adapted if k.endswith("_S3_ENDPOINT_URL")]:
        assert s3 is not None
        assert adapted[key] == "http://minio:9000", key
        adapted[key] = s3.url
    if "MLPLANE_REGISTRY_S3_PUBLIC_ENDPOINT_URL" in adapted:
        assert s3 is not None
        assert bucket is not None
        adapted["MLPLANE_REGISTRY_S3_PUBLIC_ENDPOINT_URL"] = s3.url
    # The platform's one bucket (compose names it for every service): the test's own.
    for key in [k for k in adapted if k.endswith("_S3_BUCKET")]:
        assert bucket is not None
        assert adapted[key] == "mlplane", key
        adapted[key] = bucket
    if "MLPLANE_BUILDER_REGISTRY_ARTIFACT_STORE" in adapted:
        assert adapted["MLPLANE_BUILDER_REGISTRY_ARTIFACT_STORE"] == "s3://mlplane/registry/"
        adapted["MLPLANE_BUILDER_REGISTRY_ARTIFACT_STORE"] = f"s3://{bucket}/registry/"
    # Nothing else may still name a host of the compose network.
    for key, value in adapted.items():
        assert not re.search(r"//(postgres|rabbitmq|redis|minio|tempo)[:/]", value), (key, value)
    return clean_environment(PYTHONUNBUFFERED="1", **adapted)


def _run_until_ready(command: list[str], environment: dict[str, str], log: Path) -> None:
    port = environment["MLPLANE_HTTP_PORT"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=environment, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + READY_WITHIN_S
        last = "no answer"
        while True:
            assert process.poll() is None, f"{command} exited:\n{log.read_text()[-4000:]}"
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5.0)
                if answer.status_code == 200:
                    break
                last = f"{answer.status_code} {answer.text[:300]}"
            except httpx.TransportError as exc:
                last = repr(exc)
            assert time.monotonic() < deadline, f"not ready ({last}):\n{log.read_text()[-4000:]}"
            time.sleep(0.3)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0)
        assert metrics.status_code == 200
        assert "mlplane_outbox_backlog" in metrics.text
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_WITHIN_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                pytest.fail(f"{command} did not stop on SIGTERM:\n{log.read_text()[-4000:]}")
    assert process.returncode == 0, log.read_text()[-4000:]


def test_the_migrations_job_then_the_registry_and_the_gateway_start_and_answer_readyz(
    database: tuple[str, str],
    vhost_amqp_url: str,
    s3_endpoint: S3Endpoint,  # noqa: F811
    bucket: str,
    tmp_path: Path,
) -> None:
    _, database_url = database
    common = {"database_url": database_url, "amqp_url": vhost_amqp_url}

    migrate = subprocess.run(
        compose_command("migrate"),
        env=localhost(
            compose_environment("migrate"),
            data_dir=tmp_path / "migrate",
            port=free_port(),
            **common,
        ),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert "migrated registry (schema registry)" in migrate.stdout

    for service in ("registry", "gateway"):
        environment = localhost(
            compose_environment(service),
            data_dir=tmp_path / service,
            port=free_port(),
            s3=s3_endpoint,
            bucket=bucket,
            **common,
        )
        _run_until_ready(compose_command(service), environment, tmp_path / f"{service}.log")
