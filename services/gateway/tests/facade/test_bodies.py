"""Bodies through the facade: large answers and uploads stream through intact, encoded
answers keep their encoding, and a service breaking off an answer is a 502."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from .conftest import Gateway, Serve

READER = {"Authorization": "Bearer reader-token"}
WRITER = {"Authorization": "Bearer writer-token"}
StartGateway = Callable[..., AbstractAsyncContextManager[Gateway]]
BIG = 3 * 1024 * 1024 + 17
"""Past every whole-read bound (answers 64 KiB, uploads 1 MiB)."""


def pattern(size: int) -> bytes:
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


def bodies_service() -> FastAPI:
    app = FastAPI()

    @app.get("/svc/sized/{size}")
    async def sized(size: int) -> Response:
        return Response(pattern(size), media_type="application/octet-stream")

    @app.get("/svc/unsized")
    async def unsized() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for index in range(40):
                yield pattern(1000 + index)

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    @app.get("/svc/gzipped")
    async def gzipped(request: Request) -> Response:
        return Response(
            gzip.compress(b'{"ok": true}'),
            media_type="application/json",
            headers={
                "Content-Encoding": "gzip",
                "X-Asked": request.headers.get("accept-encoding", ""),
            },
        )

    @app.get("/svc/gzipped-error")
    async def gzipped_error() -> Response:
        return Response(
            gzip.compress(b'{"detail": "no such thing"}'),
            status_code=404,
            media_type="application/json",
            headers={"Content-Encoding": "gzip"},
        )

    @app.post("/svc/digest")
    async def digest(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})

    return app


async def test_large_and_unsized_answers_come_through_whole(
    start_gateway: StartGateway, http_server: Serve
) -> None:
    async with (
        http_server(bodies_service()) as url,
        start_gateway({"scanner": f"{url}/svc"}) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
    ):
        for size in (0, 10, 64 * 1024, 64 * 1024 + 1, BIG):
            answer = await client.get(f"/v1/scanner/sized/{size}", headers=READER)
            assert answer.status_code == 200
            assert answer.content == pattern(size)
            assert answer.headers["content-length"] == str(size)
        unsized = await client.get("/v1/scanner/unsized", headers=READER)
        assert unsized.content == b"".join(pattern(1000 + i) for i in range(40))


async def test_a_large_upload_streams_to_the_service_intact(
    start_gateway: StartGateway, http_server: Serve
) -> None:
    body = pattern(BIG)

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]

    async with (
        http_server(bodies_service()) as url,
        start_gateway({"scanner": f"{url}/svc"}) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
    ):
        expected = {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        sized = await client.post("/v1/scanner/digest", content=body, headers=WRITER)
        assert sized.json() == expected
        streamed = await client.post("/v1/scanner/digest", content=chunked(), headers=WRITER)
        assert streamed.json() == expected
        keyed = await client.post(
            "/v1/scanner/digest", content=b"small", headers={**WRITER, "Idempotency-Key": "k"}
        )
        assert keyed.json()["size"] == len(b"small")


async def test_an_encoded_answer_keeps_its_encoding_and_errors_are_still_read(
    start_gateway: StartGateway, http_server: Serve
) -> None:
    async with (
        http_server(bodies_service()) as url,
        start_gateway({"scanner": f"{url}/svc"}) as gateway,
        httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
    ):
        answer = await client.get(
            "/v1/scanner/gzipped", headers={**READER, "Accept-Encoding": "gzip"}
        )
        assert answer.headers["content-encoding"] == "gzip"
        assert answer.headers["x-asked"] == "gzip"
        assert answer.json() == {"ok": True}  # httpx decodes what the service encoded
        failed = await client.get("/v1/scanner/gzipped-error", headers=READER)
        assert failed.status_code == 404
        assert failed.json()["detail"] == "no such thing"


async def test_a_service_breaking_off_its_answer_is_a_502(start_gateway: StartGateway) -> None:
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(broken, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with (
            start_gateway({"scanner": f"http://127.0.0.1:{port}/svc"}) as gateway,
            httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
        ):
            answer = await client.get("/v1/scanner/x", headers=READER)
            assert answer.status_code == 502
            assert answer.json()["type"].endswith("/upstream-unreachable")
    finally:
        server.close()
        await server.wait_closed()
