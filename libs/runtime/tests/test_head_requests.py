"""HEAD on every GET route: same status and headers as the GET, no body."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import StreamingResponse
from mlplane_runtime.app import create_service_app
from mlplane_testing.http_server import serve


def _routes() -> APIRouter:
    router = APIRouter()

    @router.get("/models/{name}")
    async def get_model(name: str, response: Response) -> dict[str, str]:
        response.headers["ETag"] = f'"{name}"'
        return {"name": name}

    @router.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b"chunk"

        return StreamingResponse(chunks(), media_type="text/plain")

    @router.api_route("/own-head", methods=["GET", "HEAD"])
    async def own_head(response: Response) -> dict[str, str]:
        response.headers["X-Handled"] = "self"
        return {"ok": "yes"}

    @router.post("/only-post")
    async def only_post() -> dict[str, str]:
        return {}

    return router


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_service_app("heads", routers=[_routes()])


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as http:
        yield http


class TestHeadOnGetRoutes:
    async def test_head_answers_the_gets_status_and_headers_without_body(
        self, client: httpx.AsyncClient
    ) -> None:
        got = await client.get("/models/fraud")
        head = await client.head("/models/fraud")
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["etag"] == '"fraud"'
        assert head.headers["content-length"] == got.headers["content-length"]
        assert head.headers["content-type"] == got.headers["content-type"]

    async def test_head_on_operational_routes_answers_200(self, client: httpx.AsyncClient) -> None:
        for path in ("/healthz", "/metrics"):
            response = await client.head(path)
            assert response.status_code == 200, path
            assert response.content == b""

    async def test_head_on_a_streamed_get_has_no_body(self, client: httpx.AsyncClient) -> None:
        response = await client.head("/stream")
        assert response.status_code == 200
        assert response.content == b""

    async def test_head_on_an_unknown_path_answers_404_without_body(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.head("/nowhere")
        assert response.status_code == 404
        assert response.content == b""

    async def test_head_on_a_post_only_route_stays_405(self, client: httpx.AsyncClient) -> None:
        assert (await client.head("/only-post")).status_code == 405

    async def test_route_declaring_head_handles_it_itself(self, client: httpx.AsyncClient) -> None:
        response = await client.head("/own-head")
        assert response.headers["x-handled"] == "self"

    async def test_access_log_and_server_see_head_over_the_wire(self, app: FastAPI) -> None:
        async with serve(app) as url, httpx.AsyncClient(base_url=url) as http:
            response = await http.head("/models/churn")
        assert response.status_code == 200
        assert response.headers["etag"] == '"churn"'
        assert response.content == b""
