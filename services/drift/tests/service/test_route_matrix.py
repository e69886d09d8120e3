"""Every route the drift service serves, read from its app, refuses whoever may not call
it: no identity or a forged one 401, a missing scope 403, another team's objects 404
(never their data). A route added later fails `test_every_route_is_classified` until
`ROUTES` says how to call it.

The platform's security matrix (tests/security) hosts the registry, builder and scanner;
this is the same door checked for the drift service on its own app.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from mlplane_contracts.scopes import (
    ALL_SCOPES,
    EVENTS_PUBLISH,
    EVENTS_SUBSCRIBE,
    MODELS_READ,
    MODELS_WRITE,
)
from mlplane_runtime.forwarded_identity import IDENTITY_HEADER
from mlplane_testing.identity import TEST_IDENTITY_SECRET, signed_identity

from .conftest import Hosted, as_, body
from .support.data import parquet, registered, table

PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Objects:
    team: str
    report_id: str
    parquet_uri: str


@dataclass(frozen=True)
class Route:
    scope: str
    call: Callable[[Objects], dict[str, Any]]
    """The request (method, url, json/content/headers) on a team's objects."""


def _get(path: Callable[[Objects], str]) -> Callable[[Objects], dict[str, Any]]:
    return lambda o: {"method": "GET", "url": path(o)}


ROUTES: dict[tuple[str, str], Route] = {
    ("PUT", "/models/{model}/versions/{version}/reference"): Route(
        MODELS_WRITE,
        lambda o: {
            "method": "PUT",
            "url": "/models/fraud/versions/1/reference",
            "content": parquet(table(50, seed=9)),
            "headers": {"content-type": "application/vnd.apache.parquet"},
        },
    ),
    ("GET", "/models/{model}/versions/{version}/reference"): Route(
        MODELS_READ, _get(lambda o: "/models/fraud/versions/1/reference")
    ),
    ("PUT", "/models/{model}/environments/{environment}/window"): Route(
        MODELS_WRITE,
        lambda o: {
            "method": "PUT",
            "url": "/models/fraud/environments/dev/window",
            "json": {"count": 5},
        },
    ),
    ("GET", "/models/{model}/environments/{environment}/window"): Route(
        MODELS_READ, _get(lambda o: "/models/fraud/environments/dev/window")
    ),
    ("POST", "/samples"): Route(
        EVENTS_PUBLISH,
        lambda o: {"method": "POST", "url": "/samples", "json": body(table(5, seed=8))},
    ),
    ("POST", "/samples/parquet"): Route(
        EVENTS_PUBLISH,
        lambda o: {
            "method": "POST",
            "url": "/samples/parquet",
            "json": {
                "model": "fraud",
                "version": 1,
                "environment": "prod",
                "uri": o.parquet_uri,
            },
        },
    ),
    ("GET", "/models/{model}/versions/{version}/windows"): Route(
        MODELS_READ, _get(lambda o: "/models/fraud/versions/1/windows?environment=prod")
    ),
    ("GET", "/models/{model}/reports"): Route(MODELS_READ, _get(lambda o: "/models/fraud/reports")),
    ("GET", "/reports/{report_id}"): Route(
        MODELS_READ, _get(lambda o: f"/reports/{o.report_id}?format=html")
    ),
}
LACKING = {
    MODELS_READ: {EVENTS_SUBSCRIBE},
    MODELS_WRITE: {MODELS_READ, EVENTS_PUBLISH},
    EVENTS_PUBLISH: {MODELS_READ, MODELS_WRITE},
}
"""For a route's scope, credentials holding everything such a caller might but that."""
OWN_NAMESPACE = {
    "/models/{model}/environments/{environment}/window",
    "/models/{model}/reports",
}
"""Routes naming no object of another team: a team's own settings and lists."""

# HEAD answers wherever GET does (the runtime's middleware, not a route): same guard.
ROUTES.update(
    {("HEAD", path): route for (method, path), route in list(ROUTES.items()) if method == "GET"}
)


def _served(hosted: Hosted) -> set[tuple[str, str]]:
    app = hosted.transport.app
    return {
        (method, str(route.path))
        for route in iter_route_contexts(app.routes)  # type: ignore[attr-defined]
        for method in (route.methods or ())
        if not str(route.path).startswith(
            ("/healthz", "/readyz", "/metrics", "/openapi", "/docs", "/redoc")
        )
    }


def test_every_route_is_classified(hosted: Hosted) -> None:
    served = _served(hosted)
    assert served - set(ROUTES) == set(), "routes served but not in ROUTES"
    declared = {key for key in ROUTES if key[0] != "HEAD"}  # HEAD: the runtime's, for GETs
    assert declared - served == set(), "ROUTES names routes no longer served"


async def _objects(hosted: Hosted, team: str) -> Objects:
    await hosted.ready(team, table(2000, seed=1))
    await hosted.post(team, body(table(1000, seed=2, shift=2.0)))
    await hosted.judge()
    listed = await hosted.http.get("/models/fraud/reports", headers=as_(team))
    [report] = listed.json()["reports"]
    uri = await hosted.blobs.put(
        f"teams/{team}/served.parquet", parquet(table(20, seed=3)), "application/octet-stream"
    )
    return Objects(team, report["id"], uri)


def _identity(
    team: str, scopes: set[str] | frozenset[str], secret: str = TEST_IDENTITY_SECRET
) -> dict[str, str]:
    return {IDENTITY_HEADER: signed_identity("drift", team=team, scopes=scopes, secret=secret)}


async def _send(hosted: Hosted, request: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    request = dict(request)
    merged = {**request.pop("headers", {}), **headers}
    async with httpx.AsyncClient(transport=hosted.transport, base_url="http://drift.test") as raw:
        return await raw.request(headers=merged, **request)


@pytest.mark.parametrize("key", sorted(ROUTES), ids=lambda k: f"{k[0]} {k[1]}")
async def test_the_route_refuses_who_may_not_call_it(
    hosted: Hosted, team: str, key: tuple[str, str]
) -> None:
    route = ROUTES[key]
    method = key[0]
    owner = await _objects(hosted, team)
    other = f"team-{uuid.uuid4().hex[:8]}"
    await hosted.deliver(registered(other, "other-model"))
    request = {**route.call(owner), "method": method}

    def refused(answer: httpx.Response, status: int, *, echoed: bool = False) -> None:
        assert answer.status_code == status, (key, answer.status_code, answer.text)
        if method != "HEAD":
            assert answer.headers["content-type"] == PROBLEM
            # The owner's name shows only where the caller sent it (a location it named).
            assert echoed or team not in answer.text

    # No identity, a plain team header, a token signed with another secret, an expired one.
    refused(await _send(hosted, request, {"X-Mlplane-Team": team}), 401)
    refused(await _send(hosted, request, _identity(team, ALL_SCOPES, secret="x" * 40)), 401)
    expired = signed_identity("drift", team=team, lifetime_s=-120)
    refused(await _send(hosted, request, {IDENTITY_HEADER: expired}), 401)
    wrong_audience = signed_identity("registry", team=team)
    refused(await _send(hosted, request, {IDENTITY_HEADER: wrong_audience}), 401)
    # The owner without the route's scope.
    refused(await _send(hosted, request, _identity(team, LACKING[route.scope])), 403)
    # Another team with every scope, on the owner's objects: nothing of them.
    crossing = await _send(hosted, request, _identity(other, ALL_SCOPES))
    if key[1] in OWN_NAMESPACE:
        # A team's own settings and lists: its own (empty) answer, never the owner's.
        assert crossing.status_code == 200, crossing.text
        if method == "GET":
            assert team not in crossing.text
            assert "amount" not in crossing.text
    elif key == ("POST", "/samples/parquet"):
        # The location is under the owner's team, not the caller's.
        refused(crossing, 403, echoed=True)
    else:
        refused(crossing, 404)
    # The owner with every scope: admitted.
    admitted = await _send(hosted, request, _identity(team, ALL_SCOPES))
    assert admitted.status_code < 300, (key, admitted.text)
