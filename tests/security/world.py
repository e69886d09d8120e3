"""What the security tests act on: two teams, their API keys, and each team's objects in
every service, made once per stack through the platform's own routes.

Team B's objects carry `World.marker_b` in every free-text field they have (model
descriptions and tags, a version's status message, a policy's denied license, an
exception's owner, dead letters' bodies), so an answer that leaks any of them to team
A is caught by looking for the marker or team B's name in the body.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from mlplane_contracts import events as ev
from mlplane_contracts.amqp import encode
from mlplane_contracts.envelope import new_event
from mlplane_contracts.examples import example_payload
from mlplane_contracts.scopes import ALL_SCOPES, EVENTS_SUBSCRIBE, MODELS_READ, MODELS_WRITE
from mlplane_contracts.topology import (
    CI_RUN_COMPLETED,
    MODEL_ALIAS_CHANGED,
    MODEL_VERSION_REGISTERED,
)
from mlplane_runtime.bus.base import OutboundMessage
from mlplane_runtime.forwarded_identity import IDENTITY_HEADER
from mlplane_testing.identity import signed_identity

from .stack import BOOTSTRAP_KEY, Stack

WAIT_S = 60.0
ARTIFACT = b"security-matrix-model-bytes"
DEAD_LETTER_TYPES = {
    "registry": CI_RUN_COMPLETED,
    "builder": MODEL_VERSION_REGISTERED,
    "scanner": "io.mlplane.image.built.v1",
    "gateway": MODEL_ALIAS_CHANGED,
}


@dataclass
class TeamObjects:
    """One team's standing objects (never changed by the matrix)."""

    team: str
    marker: str
    model: str = ""
    alias: str = "champion"
    upload_id: str = ""
    build_id: int = 0
    digest: str = ""
    finding_id: str = ""
    dead_letters: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    stack: Stack
    a: TeamObjects
    b: TeamObjects
    keys: dict[str, str] = field(default_factory=dict)
    """`a_admin` (every scope), `a_read`, `a_write` (read + write, no admin), `a_other`
    (events:subscribe only), `b_admin`: API keys the gateway issued."""

    @property
    def marker_b(self) -> str:
        return self.b.marker

    def token(
        self, service: str, team: str | None, scopes: frozenset[str] | set[str] = ALL_SCOPES
    ) -> dict[str, str]:
        """Headers carrying a valid identity for `service`, as the gateway signs it."""
        identity = signed_identity(
            service, team=team, scopes=scopes, secret=self.stack.identity_secret
        )
        return {IDENTITY_HEADER: identity}

    def direct(self, service: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A call straight at `service` (path under `/<service>`) as team A's admin."""
        headers = {**self.token(service, self.a.team), **kwargs.pop("headers", {})}
        with httpx.Client(base_url=self.stack.url, timeout=30) as client:
            return client.request(method, f"/{service}{path}", headers=headers, **kwargs)

    def as_team(self, team: TeamObjects, service: str, method: str, path: str, **kw: Any) -> Any:
        headers = {**self.token(service, team.team), **kw.pop("headers", {})}
        with httpx.Client(base_url=self.stack.url, timeout=30) as client:
            answer = client.request(method, f"/{service}{path}", headers=headers, **kw)
        assert answer.status_code < 300, (method, path, answer.status_code, answer.text)
        return answer.json() if answer.content else None

    # -- fresh objects for the admitted calls that consume what they touch ------------

    def fresh_model(self, team: TeamObjects | None = None) -> str:
        owner = team or self.a
        name = f"f-{uuid.uuid4().hex[:10]}"
        self.as_team(owner, "registry", "POST", "/models", json={"name": name})
        return name

    def fresh_version(self, model: str, team: TeamObjects | None = None) -> int:
        owner = team or self.a
        body = version_body(owner.team, owner.marker)
        made = self.as_team(owner, "registry", "POST", f"/models/{model}/versions", json=body)
        return int(made["version"])

    def upload(self, model: str, team: TeamObjects | None = None) -> dict[str, Any]:
        """An artifact upload of `model`, its one part written; not completed."""
        owner = team or self.a
        plan = self.as_team(
            owner,
            "registry",
            "POST",
            f"/models/{model}/uploads",
            json={
                "size_bytes": len(ARTIFACT),
                "sha256": hashlib.sha256(ARTIFACT).hexdigest(),
                "filename": "model.onnx",
            },
        )
        with httpx.Client(timeout=30) as client:
            written = client.put(plan["parts"][0]["url"], content=ARTIFACT)
        assert written.status_code == 200, written.text
        plan["etag"] = written.headers["etag"]
        return dict(plan)

    def completed_upload(self, model: str, team: TeamObjects | None = None) -> dict[str, Any]:
        owner = team or self.a
        plan = self.upload(model, owner)
        done = self.as_team(
            owner,
            "registry",
            "POST",
            f"/models/{model}/uploads/{plan['upload_id']}/complete",
            json={"parts": [{"number": 1, "etag": plan["etag"]}]},
        )
        return dict(done)

    def finished_build(self) -> int:
        """Team A's build, once no try of it is pending or running."""
        return self.wait_build(self.a)

    def wait_build(self, team: TeamObjects) -> int:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            page = self.as_team(team, "builder", "GET", f"/builds?model={team.model}")
            finished = [b for b in page["builds"] if b["status"] in ("succeeded", "failed")]
            if finished and len(finished) == len(page["builds"]):
                return int(finished[0]["id"])
            time.sleep(0.1)
        raise AssertionError(f"no finished build of {team.team} within {WAIT_S:g} s")

    def fresh_exception(self) -> str:
        finding = f"CVE-2099-{uuid.uuid4().int % 100000:05d}"
        self.as_team(
            self.a, "scanner", "POST", "/policies/dev/exceptions", json=exception_body(finding)
        )
        return finding

    def fresh_alias(self) -> str:
        alias = f"al-{uuid.uuid4().hex[:8]}"
        self.as_team(
            self.a,
            "registry",
            "PUT",
            f"/models/{self.a.model}/aliases/{alias}",
            json={"version": 1},
        )
        return alias


def version_body(team: str, marker: str) -> dict[str, Any]:
    commit = hashlib.sha1(uuid.uuid4().bytes).hexdigest()
    return {
        "framework": "onnx",
        "artifact": {
            "uri": f"s3://models/{team}/{commit}/model.onnx",
            "size_bytes": 1024,
            "sha256": hashlib.sha256(commit.encode()).hexdigest(),
        },
        "lineage": {
            "git_repository": "https://git.example.com/ml/fraud",
            "commit_sha": commit,
            "ci_run_url": "https://ci.example.com/runs/1",
        },
        "status_message": f"status {marker}",
        "tags": {"owner": marker},
    }


def exception_body(finding: str, owner: str = "security-tests") -> dict[str, Any]:
    return {
        "finding_id": finding,
        "owner": owner,
        "reason": "accepted for the matrix",
        "expires_at": "2099-01-01T00:00:00Z",
    }


def vex_document(digest: str) -> dict[str, Any]:
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": f"https://vex.example.com/{uuid.uuid4().hex}",
        "author": "security-tests",
        "timestamp": "2026-01-01T00:00:00Z",
        "version": 1,
        "statements": [
            {
                "vulnerability": {"name": "CVE-2099-00001"},
                "products": [{"@id": digest}],
                "status": "not_affected",
                "justification": "component_not_present",
            }
        ],
    }


def _create_key(stack: Stack, team: str, scopes: list[str]) -> str:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        made = client.post(
            "/v1/keys",
            json={"team": team, "name": f"sec-{uuid.uuid4().hex[:6]}", "scopes": scopes},
            headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"},
        )
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


def _publish_image_built(world: World, owner: TeamObjects) -> None:
    payload = example_payload("io.mlplane.image.built.v1")
    assert isinstance(payload, ev.ImageBuilt)
    image = payload.image.model_copy(update={"digest": owner.digest})
    built = payload.model_copy(
        update={"team": owner.team, "model": owner.model, "version": 1, "image": image}
    )
    message = encode(
        new_event(built, source="/mlplane/builder", subject=f"models/{owner.model}", sequence=1)
    )
    outbound = OutboundMessage(
        routing_key=message.routing_key,
        body=message.body,
        headers=message.headers,
        message_id=message.message_id,
        content_type=message.content_type,
    )
    transport = world.stack.platform.transport

    async def publish() -> None:
        await transport.publish([outbound])

    world.stack.run(publish)


def team_names(suffix: str) -> tuple[str, str]:
    """Team A's and team B's names for a world made with `suffix`."""
    return f"sa-{suffix}", f"sb-{suffix}"


def build_world(stack: Stack, suffix: str) -> World:
    """Keys, models, versions, aliases, uploads, builds, scans, policies and dead letters
    of team A and team B on `stack`. Raises AssertionError when something is not made."""
    team_a, team_b = team_names(suffix)
    world = World(
        stack,
        a=TeamObjects(team=team_a, marker=f"MARKERA{suffix}"),
        b=TeamObjects(team=team_b, marker=f"MARKERB{suffix}"),
    )
    all_scopes = sorted(ALL_SCOPES)
    world.keys = {
        "a_admin": _create_key(stack, world.a.team, all_scopes),
        "a_read": _create_key(stack, world.a.team, [MODELS_READ]),
        "a_write": _create_key(stack, world.a.team, [MODELS_READ, MODELS_WRITE]),
        "a_other": _create_key(stack, world.a.team, [EVENTS_SUBSCRIBE]),
        "b_admin": _create_key(stack, world.b.team, all_scopes),
    }
    for owner, prefix in ((world.a, "ma"), (world.b, "mb")):
        owner.model = f"{prefix}-{suffix}"
        world.as_team(
            owner,
            "registry",
            "POST",
            "/models",
            json={
                "name": owner.model,
                "description": f"model of {owner.marker}",
                "tags": {"owner": owner.marker},
            },
        )
        artifact = world.completed_upload(owner.model, owner)
        body = version_body(owner.team, owner.marker)
        body["artifact"] = {
            "uri": artifact["uri"],
            "size_bytes": artifact["size_bytes"],
            "sha256": artifact["sha256"],
        }
        world.as_team(owner, "registry", "POST", f"/models/{owner.model}/versions", json=body)
        world.as_team(
            owner,
            "registry",
            "PUT",
            f"/models/{owner.model}/aliases/{owner.alias}",
            json={"version": 1},
        )
        owner.upload_id = world.upload(owner.model, owner)["upload_id"]
        owner.digest = "sha256:" + hashlib.sha256(owner.marker.encode()).hexdigest()
        _publish_image_built(world, owner)
        # Each team's own id: a cross-team delete must not find the caller's own one.
        owner.finding_id = f"CVE-2099-{1 if owner is world.a else 2}{suffix[:4]}"
        world.as_team(
            owner,
            "scanner",
            "PUT",
            "/policies/prod",
            json={
                "max_severity": "high",
                "license_deny": [f"LicenseRef-{owner.marker}"],
                "block_when_vulnerabilities_not_assessed": True,
            },
        )
        world.as_team(
            owner,
            "scanner",
            "POST",
            "/policies/prod/exceptions",
            json=exception_body(owner.finding_id, owner=f"owner {owner.marker}"),
        )
        for service, event_type in DEAD_LETTER_TYPES.items():
            stack.plant_dead_letter(
                service, event_type, {"team": owner.team, "note": f"letter of {owner.marker}"}
            )
    for owner in (world.a, world.b):
        owner.build_id = world.wait_build(owner)
        _wait_scan(world, owner)
        for service in DEAD_LETTER_TYPES:
            owner.dead_letters[service] = _letter_of(world, owner, service)
    return world


def _wait_scan(world: World, owner: TeamObjects) -> None:
    deadline = time.monotonic() + WAIT_S
    headers = world.token("scanner", owner.team)
    with httpx.Client(base_url=world.stack.url, timeout=30) as client:
        while time.monotonic() < deadline:
            if client.get(f"/scanner/scans/{owner.digest}", headers=headers).status_code == 200:
                return
            time.sleep(0.1)
    raise AssertionError(f"the scan of {owner.team}'s image was never recorded")


def _letter_of(world: World, owner: TeamObjects, service: str) -> str:
    if service == "gateway":
        headers = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
    else:
        headers = world.token(service, None)
    with httpx.Client(base_url=world.stack.url, timeout=30) as client:
        listed = client.get(f"/{service}/dead-letters?limit=1000", headers=headers)
    assert listed.status_code == 200, listed.text
    for letter in listed.json()["dead_letters"]:
        if owner.marker in letter["body"] and json.loads(letter["body"])["team"] == owner.team:
            return str(letter["id"])
    raise AssertionError(f"no dead letter of {owner.team} in {service}")
