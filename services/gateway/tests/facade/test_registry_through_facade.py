"""The real registry behind the facade: answers, forwarded identity, errors, scopes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from mlplane_runtime.forwarded_identity import verify_forwarded_identity
from mlplane_testing.identity import GatewayIdentity

from .conftest import IDENTITY_SECRET, Gateway, Registry

WRITER = {"Authorization": "Bearer writer-token"}
READER = {"Authorization": "Bearer reader-token"}
OPERATOR = {"Authorization": "Bearer operator-token"}


@pytest.fixture
async def gateway(
    registry: Registry, start_gateway: Callable[..., AbstractAsyncContextManager[Gateway]]
) -> AsyncIterator[Gateway]:
    async with start_gateway({"registry": registry.url}) as started:
        yield started


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        yield http


async def test_a_read_through_the_facade_returns_the_registrys_answer(
    client: httpx.AsyncClient, registry: Registry, team: str
) -> None:
    created = await client.post(
        "/v1/registry/models", json={"name": "fraud", "description": "first"}, headers=WRITER
    )
    assert created.status_code == 201, created.text
    through = await client.get("/v1/registry/models/fraud", headers=READER)
    assert through.status_code == 200
    signing = GatewayIdentity("registry", secret=IDENTITY_SECRET)
    async with httpx.AsyncClient(auth=signing) as direct_client:
        direct = await direct_client.get(
            f"{registry.url}/models/fraud", headers={"X-Mlplane-Team": team}
        )
    assert through.json() == direct.json()
    assert through.json()["name"] == "fraud"
    assert through.headers["etag"] == direct.headers["etag"]
    assert through.headers["content-type"] == "application/json"

    listed = await client.get("/v1/registry/models", params={"name_prefix": "fr"}, headers=READER)
    assert [m["name"] for m in listed.json()["models"]] == ["fraud"]


async def test_the_registry_sees_the_callers_identity_and_nothing_it_made_up(
    client: httpx.AsyncClient, registry: Registry, gateway: Gateway, team: str
) -> None:
    answer = await client.get(
        "/v1/registry/models",
        headers={
            **READER,
            "X-Mlplane-Team": "someone-elses-team",
            "X-Mlplane-Principal": "user:admin",
            "X-Mlplane-Identity": "forged",
            "Cookie": "session=secret",
        },
    )
    assert answer.status_code == 200
    seen = registry.seen.headers[-1]
    assert seen["x-mlplane-team"] == team
    assert seen["x-mlplane-principal"] == "apikey:reader"
    assert "authorization" not in seen
    assert "cookie" not in seen
    identity = verify_forwarded_identity(
        seen["x-mlplane-identity"], audience="registry", key=gateway.signer.key_for("registry")
    )
    assert (identity.principal, identity.team) == ("apikey:reader", team)
    assert identity.scopes == frozenset({"models:read"})
    assert identity.expires_at - identity.issued_at <= 60


async def test_the_operator_names_the_team_it_acts_for(
    client: httpx.AsyncClient, registry: Registry, gateway: Gateway, team: str
) -> None:
    answer = await client.get("/v1/registry/models", headers={**OPERATOR, "X-Mlplane-Team": team})
    assert answer.status_code == 200
    seen = registry.seen.headers[-1]
    assert seen["x-mlplane-team"] == team
    identity = verify_forwarded_identity(
        seen["x-mlplane-identity"], audience="registry", key=gateway.signer.key_for("registry")
    )
    # The token names the team acted for, as the header does: services trust the token.
    assert (identity.principal, identity.team) == ("bootstrap", team)
    assert identity.has("admin")


async def test_a_registry_404_comes_back_as_problem_json(client: httpx.AsyncClient) -> None:
    answer = await client.get("/v1/registry/models/nothing-here", headers=READER)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == 404
    assert problem["instance"] == "/v1/registry/models/nothing-here"
    assert problem["service"] == "registry"
    assert "nothing-here" in problem["detail"]


async def test_a_registry_validation_error_keeps_its_field_list(client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/registry/models", json={"name": "Not A Label"}, headers=WRITER)
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["instance"] == "/v1/registry/models"
    assert any(error["field"] == "body.name" for error in problem["errors"])


async def test_writes_need_the_write_scope_and_calls_a_credential(
    client: httpx.AsyncClient, registry: Registry
) -> None:
    before = len(registry.seen.headers)
    refused = await client.post("/v1/registry/models", json={"name": "x"}, headers=READER)
    assert refused.status_code == 403
    assert refused.json()["scope"] == "models:write"
    anonymous = await client.get("/v1/registry/models")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert len(registry.seen.headers) == before  # neither reached the registry


async def test_paths_that_climb_out_of_the_service_are_refused(
    client: httpx.AsyncClient, registry: Registry
) -> None:
    before = len(registry.seen.headers)
    answer = await client.get("/v1/registry/%2E%2E/%2E%2E/healthz", headers=READER)
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert len(registry.seen.headers) == before


async def test_a_service_not_configured_answers_503_once_the_caller_is_admitted(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/v1/scanner/policies", headers=READER)
    anonymous = await client.get("/v1/scanner/policies")
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"].endswith("/service-not-configured")
    assert answer.json()["service"] == "scanner"
    assert anonymous.status_code == 401
