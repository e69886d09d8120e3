"""Control characters in a request's path or query string: 422 problem+json naming it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from mlplane_runtime.app import create_service_app
from mlplane_runtime.problem import PROBLEM_JSON, VALIDATION_PROBLEM_TYPE


def _routes() -> APIRouter:
    router = APIRouter()

    @router.get("/versions")
    async def list_versions(name_prefix: str = "") -> dict[str, str]:
        return {"name_prefix": name_prefix}

    @router.get("/models/{name}")
    async def get_model(name: str) -> dict[str, str]:
        return {"name": name}

    return router


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_service_app("text", routers=[_routes()])


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as http:
        yield http


def _assert_refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == VALIDATION_PROBLEM_TYPE
    assert [e["field"] for e in body["errors"]] == [field]


class TestQueryParameters:
    @pytest.mark.parametrize("escaped", ["%00", "%01", "%0A", "%1F", "%7F"])
    async def test_control_character_in_a_query_value_answers_422_naming_it(
        self, client: httpx.AsyncClient, escaped: str
    ) -> None:
        response = await client.get(f"/versions?name_prefix=a{escaped}b")
        _assert_refused(response, "query.name_prefix")

    async def test_nul_in_a_query_name_answers_422(self, client: httpx.AsyncClient) -> None:
        _assert_refused(await client.get("/versions?na%00me=x"), "query.na?me")

    async def test_printable_and_unicode_query_values_pass(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/versions", params={"name_prefix": "fraud-é %/+?"})
        assert response.json() == {"name_prefix": "fraud-é %/+?"}


class TestPathParameters:
    async def test_nul_in_a_path_parameter_answers_422(self, client: httpx.AsyncClient) -> None:
        _assert_refused(await client.get("/models/a%00b"), "path")

    async def test_newline_in_a_path_parameter_answers_422(self, client: httpx.AsyncClient) -> None:
        _assert_refused(await client.get("/models/a%0Ab"), "path")
