"""Subscriptions end to end, on the platform as `make run` hosts it: the registry and
the gateway in one process, served over HTTP on 127.0.0.1, the in-process bus on
the real PostgreSQL.

A team's key changes an alias through the facade; the registry (which requires
the gateway's signed identity: `MLPLANE_IDENTITY_SECRET` is set for the platform)
emits `model.alias.changed`; the gateway consumes it and delivers it, signed, to
a receiver this test runs on 127.0.0.1 (allowlisted). The receiver fails for a
while, then takes it; later it fails for good and the delivery is dead-lettered
after 3 tries, then redelivered. The SSE stream is read, left, and resumed with
`Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from mlplane_gateway.main import make_plugin
from mlplane_gateway.subscriptions.signing import verify_signature
from mlplane_registry.main import make_plugin as make_registry
from mlplane_runtime.db import Database
from mlplane_runtime.platform import bind_http_socket, serve_platform
from mlplane_runtime.settings import RuntimeSettings
from mlplane_testing.http_server import serve
from starlette.types import Receive, Scope, Send

from ..conftest import BOOTSTRAP_KEY, SECRET_KEY

ALIAS_CHANGED = "io.mlplane.model.alias.changed.v1"
VERSION_REGISTERED = "io.mlplane.model.version.registered.v1"
WAIT_S = 20.0
MAX_ATTEMPTS = 3


@dataclass
class Receiver:
    """A sink on 127.0.0.1: records every delivery, answers what `answers` says next."""

    answers: list[int] = field(default_factory=list)
    """Statuses for the next requests, in order; once empty, `otherwise`."""
    otherwise: int = 200
    received: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        status = self.answers.pop(0) if self.answers else self.otherwise
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.received.append((headers, body, status))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def tries_of(self, event_id: str) -> list[int]:
        return [status for headers, _, status in self.received if headers["ce-id"] == event_id]


async def eventually(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """`check()`'s first truthy result, polled for at most WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def platform_url(
    database_url: str,
    gateway_database: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    team: str,
) -> AsyncIterator[str]:
    """The platform (registry + gateway) serving on a free port of 127.0.0.1."""
    suffix = uuid4().hex[:8]
    for name, value in {
        "MLPLANE_GATEWAY_SECRET_KEY": SECRET_KEY,
        "MLPLANE_GATEWAY_BOOTSTRAP_ADMIN_KEY": BOOTSTRAP_KEY,
        "MLPLANE_IDENTITY_SECRET": "hosted-test-identity-secret-0123456789abcdef",
        "MLPLANE_GATEWAY_SINK_ALLOWLIST": '["127.0.0.0/8"]',
        "MLPLANE_GATEWAY_DELIVERY_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "MLPLANE_GATEWAY_DELIVERY_BASE_DELAY_S": "0.2",
        "MLPLANE_GATEWAY_DELIVERY_MAX_DELAY_S": "0.4",
        "MLPLANE_GATEWAY_DELIVERY_POLL_S": "0.1",
        "MLPLANE_GATEWAY_DELIVERY_TIMEOUT_S": "2",
        "MLPLANE_GATEWAY_STREAM_KEEPALIVE_S": "0.5",
        # Where the test's versions say their artifacts are: the team may use it.
        "MLPLANE_REGISTRY_TEAM_ARTIFACT_LOCATIONS": json.dumps({team: ["s3://models/"]}),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("MLPLANE_REDIS_URL", "MLPLANE_GATEWAY_REGISTRY_URL", "MLPLANE_AMQP_URL"):
        monkeypatch.delenv(name, raising=False)
    schemas = [f"t_reg_{suffix}", f"t_gw_{suffix}", f"t_bus_{suffix}"]
    sock = bind_http_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    settings = RuntimeSettings(
        database_url=database_url, data_dir=tmp_path, http_port=port, retry_base_delay_s=0.1
    )
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    serving = asyncio.create_task(
        serve_platform(
            settings,
            [make_registry(schema=schemas[0]), make_plugin(schema=schemas[1])],
            listen=sock,
            until=stop,
            bus_schema=schemas[2],
            on_ready=ready.set_result,
        )
    )
    try:
        done, _ = await asyncio.wait({serving, ready}, timeout=60, return_when="FIRST_COMPLETED")
        if serving in done:
            serving.result()  # the start failed: raise its error
        assert ready in done, "the platform did not start in time"
        yield ready.result()
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 30)
        for schema in schemas:
            await gateway_database.drop_schema(schema)


def version_body(model: str, salt: int) -> dict[str, Any]:
    commit = hashlib.sha1(f"{model}/{salt}".encode()).hexdigest()
    return {
        "framework": "sklearn",
        "artifact": {
            "uri": f"s3://models/{model}/{commit}/model.pkl",
            "size_bytes": 1024,
            "sha256": hashlib.sha256(commit.encode()).hexdigest(),
        },
        "lineage": {
            "git_repository": "https://git.example.com/team/fraud",
            "commit_sha": commit,
            "ci_run_url": f"https://ci.example.com/runs/{salt}",
        },
    }


async def sse_frames(response: httpx.Response, count: int) -> list[dict[str, str]]:
    """The next `count` event frames of an open stream (comments skipped)."""
    frames: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async with asyncio.timeout(WAIT_S):
        async for line in response.aiter_lines():
            if line == "":
                if "id" in current:
                    frames.append(current)
                    if len(frames) == count:
                        return frames
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                current[key] = value
    raise AssertionError(f"the stream ended after {len(frames)} frames")


async def lines_within(response: httpx.Response, seconds: float) -> list[str]:
    """Every line an open stream sends in `seconds`."""
    lines: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for line in response.aiter_lines():
                lines.append(line)
    return lines


async def test_events_reach_a_subscriber_signed_through_failures_and_dead_letters(
    platform_url: str, team: str, other_team: str
) -> None:
    operator = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
    receiver = Receiver()
    async with (
        serve(receiver) as sink_base,
        httpx.AsyncClient(base_url=platform_url, timeout=10) as client,
    ):
        created = await client.post(
            "/v1/keys",
            json={
                "team": team,
                "name": "ci",
                "scopes": ["models:read", "models:write", "events:subscribe"],
            },
            headers=operator,
        )
        assert created.status_code == 201, created.text
        me = {"Authorization": f"Bearer {created.json()['key']}"}

        # The registry takes the gateway's signed identity only.
        direct = await client.get("/registry/models", headers={"X-Mlplane-Team": team})
        assert direct.status_code == 401, direct.text

        refused = await client.post(
            "/v1/subscriptions", json={"sink": "http://10.1.2.3/hook"}, headers=me
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "sink_url"
        subscribed = await client.post(
            "/v1/subscriptions",
            json={"sink": f"{sink_base}/hook", "types": ["io.mlplane.model.alias."]},
            headers=me,
        )
        assert subscribed.status_code == 201, subscribed.text
        subscription = subscribed.json()
        secret = subscription["secret"]
        assert (await client.get(f"/v1/subscriptions/{subscription['id']}", headers=me)).json()[
            "sink"
        ] == f"{sink_base}/hook"

        # The receiver is down for two tries, then takes the event.
        receiver.answers = [503, 503]
        for step in (
            client.post("/v1/registry/models", json={"name": "fraud"}, headers=me),
            client.post(
                "/v1/registry/models/fraud/versions", json=version_body("fraud", 1), headers=me
            ),
            client.put(
                "/v1/registry/models/fraud/aliases/champion", json={"version": 1}, headers=me
            ),
        ):
            answer = await step
            assert answer.status_code < 300, answer.text

        async def delivered() -> list[tuple[dict[str, str], bytes, int]]:
            return [r for r in receiver.received if r[2] == 200]

        [(headers, body, _)] = await eventually(delivered, "the delivery")
        first_id = headers["ce-id"]
        assert receiver.tries_of(first_id) == [503, 503, 200]
        assert headers["ce-type"] == ALIAS_CHANGED
        assert headers["x-mlplane-subscription"] == subscription["id"]
        verify_signature(headers["x-mlplane-signature"], body, secret)
        data = json.loads(body)
        assert (data["team"], data["model"], data["alias"]) == (team, "fraud", "champion")

        log = (
            await client.get(f"/v1/subscriptions/{subscription['id']}/deliveries", headers=me)
        ).json()["deliveries"]
        assert [(d["status"], d["attempts"]) for d in log] == [("delivered", 3)]
        assert [entry["outcome"] for entry in log[0]["log"]] == [
            "retryable",
            "retryable",
            "delivered",
        ]

        # Down for good: given up after MAX_ATTEMPTS tries, then delivered again on demand.
        receiver.otherwise = 500
        moved = await client.put(
            "/v1/registry/models/fraud/aliases/challenger", json={"version": 1}, headers=me
        )
        assert moved.status_code < 300, moved.text

        async def dead_letters() -> list[dict[str, Any]]:
            answer = await client.get(
                f"/v1/subscriptions/{subscription['id']}/dead-letters", headers=me
            )
            found: list[dict[str, Any]] = answer.json()["deliveries"]
            return found

        [dead] = await eventually(dead_letters, "the dead letter")
        assert dead["attempts"] == MAX_ATTEMPTS
        assert "gave up after 3 attempts" in dead["last_error"]
        assert receiver.tries_of(dead["event_id"]) == [500] * MAX_ATTEMPTS

        receiver.otherwise = 200
        again = await client.post(
            f"/v1/subscriptions/{subscription['id']}/dead-letters/{dead['id']}/redeliver",
            headers=me,
        )
        assert again.status_code == 202, again.text

        async def redelivered() -> bool:
            return receiver.tries_of(dead["event_id"])[-1:] == [200]

        await eventually(redelivered, "the redelivery")
        assert await dead_letters() == []

        # The stream: every event of the team from the start (the version's registration
        # too); after a disconnect, only what followed.
        async with client.stream("GET", "/v1/events/stream", headers=me) as stream:
            assert stream.status_code == 200
            registered, first, second = await sse_frames(stream, 3)
        assert registered["event"] == VERSION_REGISTERED
        assert (first["event"], json.loads(first["data"])["id"]) == (ALIAS_CHANGED, first_id)
        assert json.loads(second["data"])["id"] == dead["event_id"]
        moved = await client.put(
            "/v1/registry/models/fraud/aliases/champion", json={"version": 2}, headers=me
        )
        assert moved.status_code == 404  # no version 2: nothing happens, nothing is sent
        created_v2 = await client.post(
            "/v1/registry/models/fraud/versions", json=version_body("fraud", 2), headers=me
        )
        assert created_v2.status_code == 201, created_v2.text
        moved = await client.put(
            "/v1/registry/models/fraud/aliases/champion", json={"version": 2}, headers=me
        )
        assert moved.status_code < 300, moved.text
        async with client.stream(
            "GET", "/v1/events/stream", headers={**me, "Last-Event-ID": first["id"]}
        ) as resumed:
            after_first, registered_v2, third = await sse_frames(resumed, 3)
        assert after_first["id"] == second["id"]
        assert registered_v2["event"] == VERSION_REGISTERED
        assert json.loads(third["data"])["data"]["version"] == 2

        # Another team's subscriber sees none of this team's events.
        outsider = await client.post(
            "/v1/keys",
            json={"team": other_team, "name": "x", "scopes": ["events:subscribe"]},
            headers=operator,
        )
        other = {"Authorization": f"Bearer {outsider.json()['key']}"}
        async with client.stream("GET", "/v1/events/stream", headers=other) as foreign:
            seen = await lines_within(foreign, 1.5)
        assert any(line.startswith(": keep-alive") for line in seen), seen
        assert not [line for line in seen if line.startswith(("id:", "data:"))]
