"""Request body limits: 413 problem+json past a route's limit, counted while streaming."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from mlplane_runtime.app import create_service_app
from mlplane_runtime.body_limit import BODY_TOO_LARGE_PROBLEM_TYPE, max_body_bytes
from mlplane_runtime.problem import PROBLEM_JSON
from mlplane_testing.http_server import serve
from pydantic import BaseModel

LIMIT = 1024


class Note(BaseModel):
    text: str


def _routes(seen: list[int]) -> APIRouter:
    router = APIRouter()

    @router.post("/notes")
    async def create_note(note: Note) -> dict[str, int]:
        return {"length": len(note.text)}

    @router.put("/blobs", openapi_extra=max_body_bytes(4 * LIMIT))
    async def put_blob(request: Request) -> dict[str, int]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            seen.append(size)
        return {"size": size}

    return router


@pytest.fixture
def seen() -> list[int]:
    return []


@pytest.fixture
def app(seen: list[int]) -> FastAPI:
    return create_service_app("limits", routers=[_routes(seen)], max_body_bytes=LIMIT)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as http:
        yield http


def _assert_too_large(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["connection"] == "close"
    body = response.json()
    assert body["type"] == BODY_TOO_LARGE_PROBLEM_TYPE
    assert body["max_body_bytes"] == limit


async def _chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * size


class TestDefaultLimit:
    async def test_json_body_within_the_default_limit_is_accepted(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post("/notes", json={"text": "a" * (LIMIT - 20)})
        assert response.status_code == 200, response.text

    async def test_json_body_past_the_default_limit_answers_413(
        self, client: httpx.AsyncClient
    ) -> None:
        _assert_too_large(await client.post("/notes", json={"text": "a" * LIMIT}), LIMIT)

    async def test_chunked_body_past_the_default_limit_answers_413(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/notes", content=_chunks(8, 512), headers={"content-type": "application/json"}
        )
        _assert_too_large(response, LIMIT)


class TestDeclaredLimit:
    async def test_route_declaring_a_larger_limit_accepts_a_body_up_to_it(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.put("/blobs", content=b"x" * (4 * LIMIT))
        assert response.json() == {"size": 4 * LIMIT}

    async def test_declared_limit_appears_in_the_openapi_document(self, app: FastAPI) -> None:
        operation = app.openapi()["paths"]["/blobs"]["put"]
        assert operation["x-mlplane-max-body-bytes"] == 4 * LIMIT

    async def test_content_length_past_the_declared_limit_is_refused_before_reading(
        self, client: httpx.AsyncClient, seen: list[int]
    ) -> None:
        _assert_too_large(await client.put("/blobs", content=b"x" * (4 * LIMIT + 1)), 4 * LIMIT)
        assert seen == []

    async def test_chunked_body_is_refused_as_soon_as_it_passes_the_limit(
        self, client: httpx.AsyncClient, seen: list[int]
    ) -> None:
        _assert_too_large(await client.put("/blobs", content=_chunks(100, LIMIT)), 4 * LIMIT)
        assert max(seen) <= 4 * LIMIT


class TestOverTheWire:
    async def test_huge_declared_body_is_answered_413_without_being_sent(
        self, app: FastAPI
    ) -> None:
        async with serve(app) as url:
            host, port = url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                b"POST /notes HTTP/1.1\r\nHost: svc\r\nContent-Type: application/json\r\n"
                b"Content-Length: 80000000\r\n\r\n{"
            )
            await writer.drain()
            async with asyncio.timeout(5):
                answer = await reader.read()  # the server closes after answering
            writer.close()
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert b"connection: close" in answer.lower()
