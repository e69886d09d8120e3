"""The auth matrix: every key-authenticated route against every way a caller can fail.

Each route's scope is read from its OpenAPI operation (`x-mlplane-scope`); a route
missing from ROUTES (or a new one) fails `test_every_route_is_in_the_matrix`, so the
matrix grows with the API (the facade's routes, left out of the document, have
their own matrix in facade/test_facade_auth_matrix). For every route: no credential,
wrong credentials,
an expired key, a revoked key, a key without the route's scope (403), a key of
another team acting on this team's resource (404; 403 for publishing an event
of another team), and the key that may (2xx) — which also proves the mark and
the dependency name the same scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from mlplane_contracts.envelope import new_event
from mlplane_contracts.events import CiRunCompleted
from mlplane_contracts.http import encode_binary
from mlplane_gateway.auth.guard import SCOPE_EXTENSION
from mlplane_gateway.auth.principals import Scope

from ..conftest import LOCAL_SINK, Harness
from ..payloads import custom_run


@dataclass(frozen=True)
class Target:
    """The resources a request acts on: a team, one of its keys, one of its
    subscriptions and a dead letter of that subscription."""

    team: str
    key_id: str
    subscription_id: str
    dead_letter_id: int


Request = tuple[str, str, dict[str, Any]]


def create_key(target: Target) -> Request:
    body = {"team": target.team, "name": "made", "scopes": ["admin"]}
    return "POST", "/v1/keys", {"json": body}


def list_keys(target: Target) -> Request:
    return "GET", "/v1/keys", {"params": {"team": target.team}}


def revoke_key(target: Target) -> Request:
    return "DELETE", f"/v1/keys/{target.key_id}", {}


def rotate_secret(target: Target) -> Request:
    return "PUT", f"/v1/teams/{target.team}/webhook-secret", {}


def publish(target: Target) -> Request:
    data = CiRunCompleted.model_validate(
        {**custom_run(run_id=secrets.token_hex(4)), "team": target.team, "provider": "other"}
    )
    message = encode_binary(new_event(data, source="https://ci.example.com"))
    return "POST", "/v1/events", {"content": message.body, "headers": message.headers}


def request_deployment(target: Target) -> Request:
    body = {"model": "fraud", "version": 1, "environment": "dev"}
    return "POST", f"/v1/teams/{target.team}/deployment-requests", {"json": body}


def subscribe(target: Target) -> Request:
    # Naming the team: another team's key asking for it is refused as "not found".
    return "POST", "/v1/subscriptions", {"json": {"sink": LOCAL_SINK, "team": target.team}}


def list_subscriptions(target: Target) -> Request:
    return "GET", "/v1/subscriptions", {"params": {"team": target.team}}


def get_subscription(target: Target) -> Request:
    return "GET", f"/v1/subscriptions/{target.subscription_id}", {}


def delete_subscription(target: Target) -> Request:
    return "DELETE", f"/v1/subscriptions/{target.subscription_id}", {}


def delivery_log(target: Target) -> Request:
    return "GET", f"/v1/subscriptions/{target.subscription_id}/deliveries", {}


def dead_letters(target: Target) -> Request:
    return "GET", f"/v1/subscriptions/{target.subscription_id}/dead-letters", {}


def redeliver(target: Target) -> Request:
    path = f"/v1/subscriptions/{target.subscription_id}/dead-letters/{target.dead_letter_id}"
    return "POST", f"{path}/redeliver", {}


def stream(target: Target) -> Request:
    return "GET", "/v1/events/stream", {}


@dataclass(frozen=True)
class Route:
    request: Callable[[Target], Request]
    success: int
    other_team: int = 404
    streams: bool = False
    """An endless answer: read through `open_stream`, not the buffering client."""


ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "/v1/keys"): Route(create_key, 201),
    ("GET", "/v1/keys"): Route(list_keys, 200),
    ("DELETE", "/v1/keys/{key_id}"): Route(revoke_key, 204),
    ("PUT", "/v1/teams/{team}/webhook-secret"): Route(rotate_secret, 200),
    ("POST", "/v1/events"): Route(publish, 202, other_team=403),
    ("POST", "/v1/teams/{team}/deployment-requests"): Route(request_deployment, 202),
    ("POST", "/v1/subscriptions"): Route(subscribe, 201),
    ("GET", "/v1/subscriptions"): Route(list_subscriptions, 200),
    ("GET", "/v1/subscriptions/{subscription_id}"): Route(get_subscription, 200),
    ("DELETE", "/v1/subscriptions/{subscription_id}"): Route(delete_subscription, 204),
    ("GET", "/v1/subscriptions/{subscription_id}/deliveries"): Route(delivery_log, 200),
    ("GET", "/v1/subscriptions/{subscription_id}/dead-letters"): Route(dead_letters, 200),
    (
        "POST",
        "/v1/subscriptions/{subscription_id}/dead-letters/{delivery_id}/redeliver",
    ): Route(redeliver, 202),
    # The stream is the caller's own team's by construction: another team's key gets
    # its own (empty) stream, never this team's events (test_subscriptions_hosted).
    ("GET", "/v1/events/stream"): Route(stream, 200, other_team=200, streams=True),
}
SIGNATURE_ROUTES = {
    ("POST", "/v1/webhooks/github/{team}"),
    ("POST", "/v1/webhooks/gitlab/{team}"),
}
"""Authenticated by their webhook signature, not a key (tested in test_webhooks)."""


def scopes_by_route(harness: Harness) -> dict[tuple[str, str], str | None]:
    document = harness.client._transport.app.openapi()  # type: ignore[attr-defined]
    return {
        (method.upper(), path): operation.get(SCOPE_EXTENSION)
        for path, operations in document["paths"].items()
        if path.startswith("/v1/")
        for method, operation in operations.items()
    }


async def test_every_route_is_in_the_matrix(harness: Harness) -> None:
    scopes = scopes_by_route(harness)
    assert set(scopes) == set(ROUTES) | SIGNATURE_ROUTES
    assert all(scopes[route] is not None for route in ROUTES)
    assert all(scopes[route] is None for route in SIGNATURE_ROUTES)


async def open_stream(
    app: Any, method: str, url: str, headers: dict[str, str], read_s: float = 0.3
) -> httpx.Response:
    """The answer of an endless route: its status, headers and what it sent in `read_s`
    (the app is driven directly and cancelled after, as a client going away)."""
    path, _, query = url.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("gateway.test", 80),
    }
    start: dict[str, Any] = {}
    body: list[bytes] = []
    finished = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client never disconnects by itself
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    task = asyncio.create_task(app(scope, receive, send))
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished.wait(), read_s)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert start, "the app sent no answer"
    return httpx.Response(
        start["status"],
        headers=[(k.decode(), v.decode()) for k, v in start["headers"]],
        content=b"".join(body),
    )


async def call(harness: Harness, route: Route, target: Target, headers: dict[str, str]) -> Any:
    method, url, kwargs = route.request(target)
    kwargs = {**kwargs, "headers": {**kwargs.get("headers", {}), **headers}}
    if route.streams:
        return await open_stream(harness.app, method, url, kwargs["headers"])
    return await harness.client.request(method, url, **kwargs)


async def target_of(harness: Harness, team: str) -> Target:
    victim = await harness.create_key(team, ["models:read"], name="victim")
    subscription = await harness.subscription(team)
    dead = await harness.dead_letter(team, subscription["id"])
    return Target(team, victim["id"], subscription["id"], dead)


def credential_cases() -> list[str]:
    return ["none", "garbage", "unknown-key", "wrong-secret", "expired", "revoked", "foreign-jwt"]


@pytest.fixture(params=sorted(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def route_key(request: pytest.FixtureRequest) -> tuple[str, str]:
    key: tuple[str, str] = request.param
    return key


async def test_a_route_refuses_a_caller_that_is_not_authenticated(
    harness: Harness, team: str, route_key: tuple[str, str]
) -> None:
    route = ROUTES[route_key]
    scope = scopes_by_route(harness)[route_key]
    # One target for every case: each case is refused, so none changes it.
    target = await target_of(harness, team)
    for case in credential_cases():
        holder = await harness.create_key(team, [str(scope)])
        headers: dict[str, str]
        if case == "none":
            headers = {}
        elif case == "garbage":
            headers = harness.bearer("hello")
        elif case == "unknown-key":
            headers = harness.bearer(f"mlp_zzzzzzzz_{secrets.token_urlsafe(32)}")
        elif case == "wrong-secret":
            headers = harness.bearer(f"mlp_{holder['id']}_{secrets.token_urlsafe(32)}")
        elif case == "expired":
            expired = await harness.create_key(
                team, [str(scope)], expires_at=datetime.now(UTC) - timedelta(seconds=1)
            )
            headers = harness.bearer(expired["key"])
        elif case == "revoked":
            revoked = await harness.client.delete(
                f"/v1/keys/{holder['id']}", headers=harness.operator
            )
            assert revoked.status_code == 204
            headers = harness.bearer(holder["key"])
        else:  # a well-formed JWT nobody configured
            headers = harness.bearer("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl")
        response = await call(harness, route, target, headers)
        assert response.status_code == 401, (case, response.text)
        assert response.headers["content-type"] == "application/problem+json", case
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="mlplane"'), case
        assert ("error=" in challenge) == (case != "none"), case


async def test_a_route_refuses_a_key_without_its_scope(
    harness: Harness, team: str, route_key: tuple[str, str]
) -> None:
    scope = scopes_by_route(harness)[route_key]
    others = [s.value for s in Scope if s.value != scope]
    key = await harness.create_key(team, others)
    target = await target_of(harness, team)
    response = await call(harness, ROUTES[route_key], target, harness.bearer(key["key"]))
    assert response.status_code == 403, response.text
    assert response.json()["scope"] == scope
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_a_route_hides_another_teams_resources(
    harness: Harness, team: str, other_team: str, route_key: tuple[str, str]
) -> None:
    scope = scopes_by_route(harness)[route_key]
    intruder = await harness.create_key(other_team, [str(scope)])
    target = await target_of(harness, team)
    route = ROUTES[route_key]
    response = await call(harness, route, target, harness.bearer(intruder["key"]))
    assert response.status_code == route.other_team, response.text
    if route.other_team >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    else:
        assert target.team not in response.text
    # Nothing was changed on the other team: its key, subscription and dead letter stay.
    listed = await harness.client.get("/v1/keys", params={"team": team}, headers=harness.operator)
    assert all(k["revoked_at"] is None for k in listed.json()["keys"])
    dead = await harness.client.get(
        f"/v1/subscriptions/{target.subscription_id}/dead-letters", headers=harness.operator
    )
    assert [d["id"] for d in dead.json()["deliveries"]] == [target.dead_letter_id]


async def test_a_route_admits_a_key_with_its_scope_on_its_own_team(
    harness: Harness, team: str, route_key: tuple[str, str]
) -> None:
    scope = scopes_by_route(harness)[route_key]
    key = await harness.create_key(team, [str(scope)])
    target = await target_of(harness, team)
    response = await call(harness, ROUTES[route_key], target, harness.bearer(key["key"]))
    assert response.status_code == ROUTES[route_key].success, response.text
