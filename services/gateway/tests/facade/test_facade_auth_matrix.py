"""The auth matrix of the facade's routes (left out of the OpenAPI document, so listed
here): the gateway's real authentication, rate limits and scopes in front of the
real registry; services this gateway has no URL for answer 503 once admitted.

For every route: no credential, wrong credentials, an expired key, a revoked key
(401 with `WWW-Authenticate`), a key without the route's scope (403), a key of
another team (the registry answers 404: it sees that team only), and the key
that may (2xx, or 503 "service not configured").
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from mlplane_gateway.auth.principals import Scope
from mlplane_testing.identity import GatewayIdentity

from ..conftest import Harness
from .conftest import IDENTITY_SECRET, Registry


@dataclass(frozen=True)
class FacadeRoute:
    method: str
    url: Callable[[str], str]
    scope: str
    success: int
    other_team: int
    body: Callable[[str], dict[str, Any]] | None = None
    mlflow: bool = False


ROUTES = [
    FacadeRoute("GET", lambda m: f"/v1/registry/models/{m}", "models:read", 200, 404),
    FacadeRoute(
        "PATCH",
        lambda m: f"/v1/registry/models/{m}",
        "models:write",
        200,
        404,
        body=lambda m: {"description": "changed"},
    ),
    FacadeRoute(
        "GET",
        lambda m: f"/api/2.0/mlflow/registered-models/get?name={m}",
        "models:read",
        200,
        404,
        mlflow=True,
    ),
    FacadeRoute(
        "PATCH",
        lambda m: "/api/2.0/mlflow/registered-models/update",
        "models:write",
        200,
        404,
        body=lambda m: {"name": m, "description": "changed"},
        mlflow=True,
    ),
    FacadeRoute("GET", lambda m: "/v1/scanner/policies", "models:read", 503, 503),
    FacadeRoute(
        "POST",
        lambda m: "/v1/deployer/deployments",
        "deploy:write",
        503,
        503,
        body=lambda m: {"model": m},
    ),
    FacadeRoute(
        "POST", lambda m: "/v1/deployer/deployments/7/approvals", "deploy:approve", 503, 503
    ),
    FacadeRoute("GET", lambda m: "/v1/drift/reports", "models:read", 503, 503),
]


async def send(
    harness: Harness, route: FacadeRoute, model: str, headers: dict[str, str]
) -> httpx.Response:
    body = route.body(model) if route.body is not None else None
    return await harness.client.request(route.method, route.url(model), json=body, headers=headers)


async def refusals(harness: Harness, team: str, route: FacadeRoute) -> list[dict[str, str]]:
    """Headers of every credential that must be refused with 401."""
    holder = await harness.create_key(team, [route.scope])
    expired = await harness.create_key(
        team, [route.scope], expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    revoked = await harness.create_key(team, [route.scope])
    answer = await harness.client.delete(f"/v1/keys/{revoked['id']}", headers=harness.operator)
    assert answer.status_code == 204
    return [
        {},
        harness.bearer("hello"),
        harness.bearer(f"mlp_zzzzzzzz_{secrets.token_urlsafe(32)}"),
        harness.bearer(f"mlp_{holder['id']}_{secrets.token_urlsafe(32)}"),
        harness.bearer(expired["key"]),
        harness.bearer(revoked["key"]),
        harness.bearer("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"),
        {"X-Api-Key": "mlp_short"},
    ]


async def test_every_facade_route_refuses_and_admits_as_its_scope_says(
    harness_for: Callable[..., Any], registry: Registry, team: str, other_team: str
) -> None:
    harness: Harness = await harness_for(
        registry_url=registry.url, key_burst=10_000, team_burst=10_000
    )
    model = "fraud"
    signing = GatewayIdentity("registry", secret=IDENTITY_SECRET)
    async with httpx.AsyncClient(base_url=registry.url, auth=signing) as direct:
        made = await direct.post("/models", json={"name": model}, headers={"X-Mlplane-Team": team})
        assert made.status_code == 201, made.text

    for route in ROUTES:
        where = f"{route.method} {route.url(model)}"
        for headers in await refusals(harness, team, route):
            answer = await send(harness, route, model, headers)
            assert answer.status_code == 401, (where, headers, answer.text)
            assert answer.headers["content-type"] == "application/problem+json", where
            assert answer.headers["www-authenticate"].startswith('Bearer realm="mlplane"'), where
            if route.mlflow:
                assert answer.json()["error_code"] == "UNAUTHENTICATED", where

        others = [s.value for s in Scope if s.value != route.scope]
        lacking = await harness.create_key(team, others)
        answer = await send(harness, route, model, harness.bearer(lacking["key"]))
        assert answer.status_code == 403, (where, answer.text)
        assert answer.json()["scope"] == route.scope, where
        assert 'error="insufficient_scope"' in answer.headers["www-authenticate"], where

        intruder = await harness.create_key(other_team, [route.scope])
        answer = await send(harness, route, model, harness.bearer(intruder["key"]))
        assert answer.status_code == route.other_team, (where, answer.text)
        assert answer.headers["content-type"] == "application/problem+json", where

        holder = await harness.create_key(team, [route.scope])
        answer = await send(harness, route, model, harness.bearer(holder["key"]))
        assert answer.status_code == route.success, (where, answer.text)
        if route.success == 503:
            assert answer.json()["type"].endswith("/service-not-configured"), where


async def test_the_facade_reads_credentials_as_every_other_route_does(
    harness: Harness, team: str
) -> None:
    token = await harness.key_token(team, "models:read")
    url = "/v1/scanner/policies"  # no scanner here: 503 once the caller is admitted
    admitted = [
        {"X-Api-Key": token},
        {"Authorization": f"bearer   {token}"},
        {"Authorization": f"Basic {token}", "X-Api-Key": token},
    ]
    for headers in admitted:
        assert (await harness.client.get(url, headers=headers)).status_code == 503, headers
    refused = [{"Authorization": f"Basic {token}"}, {"Authorization": "Bearer"}, {"X-Api-Key": ""}]
    for headers in refused:
        assert (await harness.client.get(url, headers=headers)).status_code == 401, headers
    # Where both are sent, the bearer token is the credential.
    both = {"Authorization": "Bearer nonsense", "X-Api-Key": token}
    assert (await harness.client.get(url, headers=both)).status_code == 401
