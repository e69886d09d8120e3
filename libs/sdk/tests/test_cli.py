"""The `mlplane` command, run as the installed console script.

`dead-letters` runs against a real platform served over HTTP in this process: the
gateway in front of the runtime tests' example service (hosted under the name
`registry`, so the gateway's facade fronts it) on the test PostgreSQL, in-process
bus; the CLI calls the gateway with an admin key. `up` runs as its own process on
an embedded PostgreSQL in a temporary data directory.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from mlplane_gateway.main import make_plugin as make_gateway
from mlplane_runtime.db import create_database
from mlplane_runtime.platform import bind_http_socket, serve_platform
from mlplane_runtime.settings import RuntimeSettings

MLPLANE = Path(sys.executable).parent / "mlplane"
EXAMPLE_SERVICES = Path(__file__).parents[2] / "runtime" / "tests" / "fixtures"
DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
COMMAND_TIMEOUT_S = 60.0
WAIT_S = 30.0


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str


async def mlplane(*args: str, env: dict[str, str] | None = None) -> Finished:
    """Run the `mlplane` console script to completion (bounded in time)."""
    process = await asyncio.create_subprocess_exec(
        str(MLPLANE),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**_clean_environment(), **(env or {})},
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Finished(process.returncode, stdout.decode(), stderr.decode())


def _clean_environment() -> dict[str, str]:
    """This process's environment without MLPLANE_* settings that would change the run."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MLPLANE_")}


def unique(prefix: str) -> str:
    return f"{prefix}{uuid4().hex[:10]}"


ADMIN_KEY = "cli-test-bootstrap-admin-key-0123456789abcdef"


@dataclass
class RunningPlatform:
    url: str
    service: str
    api_key: str = ADMIN_KEY


@pytest.fixture
async def running_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RunningPlatform]:
    """The gateway and the example service (as `registry`) hosted by `serve_platform`
    on a free port of 127.0.0.1."""
    monkeypatch.syspath_prepend(str(EXAMPLE_SERVICES))
    example = importlib.import_module("example_service.plugin")
    database_url = os.environ.get("MLPLANE_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    service, schema, bus_schema = "registry", unique("t_"), unique("t_")
    gateway_schema = unique("t_")
    listen = bind_http_socket("127.0.0.1", 0)
    port = listen.getsockname()[1]
    monkeypatch.setenv("MLPLANE_GATEWAY_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("MLPLANE_GATEWAY_REGISTRY_URL", f"http://127.0.0.1:{port}/{service}")
    settings = RuntimeSettings(database_url=database_url, data_dir=tmp_path)
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    until = asyncio.Event()
    serving = asyncio.create_task(
        serve_platform(
            settings,
            [example.make_plugin(service, schema), make_gateway("gateway", gateway_schema)],
            listen=listen,
            until=until,
            on_ready=ready.set_result,
            bus_schema=bus_schema,
        )
    )
    try:
        done, _ = await asyncio.wait(
            {ready, serving}, timeout=WAIT_S, return_when="FIRST_COMPLETED"
        )
        assert ready in done, "the platform did not start serving"
        yield RunningPlatform(ready.result(), service)
    finally:
        until.set()
        await asyncio.wait_for(serving, WAIT_S)
        database = create_database(database_url)
        try:
            await database.drop_schema(schema)
            await database.drop_schema(bus_schema)
            await database.drop_schema(gateway_schema)
        finally:
            await database.dispose()


async def refused_event_dead_lettered(platform: RunningPlatform) -> dict[str, Any]:
    """Write the alias the example service refuses, and wait for its dead letter."""
    async with httpx.AsyncClient(
        base_url=platform.url, headers={"Authorization": f"Bearer {platform.api_key}"}
    ) as http:
        written = await http.post(
            f"/v1/{platform.service}/aliases",
            json={"team": unique("team-"), "model": "fraud", "alias": "refused", "version": 1},
        )
        assert written.status_code == 201, written.text
        async with asyncio.timeout(WAIT_S):
            while True:
                listed = await http.get(f"/v1/{platform.service}/dead-letters")
                letters = listed.json()["dead_letters"]
                if letters:
                    return dict(letters[0])
                await asyncio.sleep(0.05)


class TestVersion:
    async def test_version_prints_the_installed_version(self) -> None:
        finished = await mlplane("--version")

        assert finished.code == 0
        assert finished.stdout.strip() == f"mlplane {version('mlplane-sdk')}"


class TestDeadLetters:
    async def test_list_shows_the_dead_letters_of_a_running_platform(
        self, running_platform: RunningPlatform
    ) -> None:
        letter = await refused_event_dead_lettered(running_platform)

        finished = await mlplane(
            "dead-letters", "list", "--service", running_platform.service,
            "--url", running_platform.url, "--api-key", running_platform.api_key,
        )  # fmt: skip

        assert finished.code == 0, finished.stderr
        header, row = finished.stdout.splitlines()
        assert header.split()[:3] == ["ID", "EVENT", "TYPE"]
        assert row.startswith(letter["id"])
        assert "io.mlplane.model.alias.changed.v1" in row
        assert "refuses the alias 'refused'" in row

    async def test_list_as_json_is_the_apis_answer(self, running_platform: RunningPlatform) -> None:
        letter = await refused_event_dead_lettered(running_platform)

        finished = await mlplane(
            "dead-letters", "list", "-s", running_platform.service, "--json",
            env={"MLPLANE_URL": running_platform.url, "MLPLANE_API_KEY": running_platform.api_key},
        )  # fmt: skip

        assert finished.code == 0, finished.stderr
        answer = json.loads(finished.stdout)
        assert answer["service"] == running_platform.service
        assert [d["id"] for d in answer["dead_letters"]] == [letter["id"]]

    async def test_replay_moves_the_named_dead_letter_back(
        self, running_platform: RunningPlatform
    ) -> None:
        letter = await refused_event_dead_lettered(running_platform)

        finished = await mlplane(
            "dead-letters", "replay", "--service", running_platform.service,
            "--id", letter["id"], "--url", running_platform.url,
            "--api-key", running_platform.api_key,
        )  # fmt: skip

        assert finished.code == 0, finished.stderr
        assert finished.stdout.strip() == f"replayed 1 dead letter(s) of {running_platform.service}"

    async def test_without_a_key_the_dead_letters_stay_closed(
        self, running_platform: RunningPlatform
    ) -> None:
        await refused_event_dead_lettered(running_platform)

        finished = await mlplane(
            "dead-letters", "list", "-s", running_platform.service, "--url", running_platform.url
        )

        assert finished.code == 4  # not signed in / refused (docs/cli.md: exit codes)
        assert finished.stderr.startswith("error: HTTP 401")
        assert "Traceback" not in finished.stderr

    async def test_unreachable_platform_is_one_line_error_not_a_traceback(self) -> None:
        listener = bind_http_socket("127.0.0.1", 0)
        port = listener.getsockname()[1]
        listener.close()  # nothing listens there now

        finished = await mlplane(
            "dead-letters", "list", "-s", "registry", "--url", f"http://127.0.0.1:{port}"
        )

        assert finished.code == 3  # unreachable (docs/cli.md: exit codes)
        assert finished.stderr.startswith(f"error: cannot reach mlplane at http://127.0.0.1:{port}")
        assert "Traceback" not in finished.stderr


class TestUp:
    async def test_up_serves_until_sigterm_then_stops_the_embedded_postgres(
        self, tmp_path: Path
    ) -> None:
        probe = bind_http_socket("127.0.0.1", 0)
        port = probe.getsockname()[1]
        probe.close()
        # Outside pytest's temporary root, which any pytest session starting meanwhile
        # resets to 0700: the embedded PostgreSQL runs as a user of its own.
        workdir = Path(tempfile.mkdtemp(prefix="mlplane-up-"))
        data_dir = workdir / "data"
        process = await asyncio.create_subprocess_exec(
            str(MLPLANE),
            "up",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={
                **_clean_environment(),
                "MLPLANE_DATA_DIR": str(data_dir),
                "MLPLANE_HTTP_PORT": str(port),
            },
        )
        try:
            assert process.stdout is not None
            announced = await asyncio.wait_for(process.stdout.readline(), COMMAND_TIMEOUT_S)
            if not announced:
                assert process.stderr is not None
                failure = await asyncio.wait_for(process.stderr.read(), COMMAND_TIMEOUT_S)
                pytest.fail(f"mlplane up stopped before serving:\n{failure.decode()[-3000:]}")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                ready = await http.get("/readyz")
            assert (data_dir / "postgres" / "postmaster.pid").exists()

            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_S)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

        assert announced.decode().strip() == (
            f"mlplane is serving on http://127.0.0.1:{port} (Ctrl+C to stop)"
        )
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "bus": "ok"}
        assert process.returncode == 0, stderr.decode()
        messages = [
            json.loads(line)["message"]
            for line in stderr.decode().splitlines()
            if line.startswith("{")
        ]
        assert messages.index("received SIGTERM, shutting down") < messages.index(
            "embedded PostgreSQL stopped"
        )
        # PostgreSQL removes its pid file only when it shut down cleanly.
        assert not (data_dir / "postgres" / "postmaster.pid").exists()
        shutil.rmtree(workdir, ignore_errors=True)
