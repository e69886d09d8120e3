"""Connection deadlines and caps, against a real uvicorn server on 127.0.0.1 over raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from fastapi import APIRouter, Request
from mlplane_runtime.app import create_service_app
from mlplane_runtime.platform.http_protocol import ConnectionLimits, limited_protocol
from mlplane_runtime.platform.http_server import connection_limits
from mlplane_runtime.settings import RuntimeSettings

LIMITS = ConnectionLimits(
    header_timeout_s=0.5, body_timeout_s=0.5, max_connections=20, max_header_bytes=4096
)
KEEP_ALIVE_S = 1
# Far more than any deadline above: a connection still open after it was never closed.
WAIT_S = 5.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _routes() -> APIRouter:
    router = APIRouter()

    @router.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    @router.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    return router


@pytest.fixture
async def address() -> AsyncIterator[tuple[str, int]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        create_service_app("conn", routers=[_routes()]),
        lifespan="off",
        log_config=None,
        access_log=False,
        http=limited_protocol(LIMITS),
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=1,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[:2]
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, timeout=10)
        sock.close()


async def _closed_within(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """What the server sent before closing the connection, and after how long."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(WAIT_S):
            answer = await reader.read()
    except ConnectionError:
        answer = b""  # reset: the client wrote after the server had closed
    return answer, time.monotonic() - started


class TestHeaderDeadline:
    async def test_connection_sending_nothing_is_closed_after_the_header_timeout(
        self, address: tuple[str, int]
    ) -> None:
        reader, writer = await asyncio.open_connection(*address)
        answer, elapsed = await _closed_within(reader)
        writer.close()
        assert answer == b""
        assert elapsed < WAIT_S / 2

    async def test_half_sent_headers_are_answered_408_and_closed(
        self, address: tuple[str, int]
    ) -> None:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
        answer, elapsed = await _closed_within(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert elapsed < WAIT_S / 2

    async def test_headers_trickled_byte_by_byte_do_not_extend_the_deadline(
        self, address: tuple[str, int]
    ) -> None:
        reader, writer = await asyncio.open_connection(*address)
        started = time.monotonic()
        with contextlib.suppress(ConnectionError):
            for byte in b"GET /ping HTTP/1.1\r\nX-Slow: " + b"a" * 200:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
                if reader.at_eof() or time.monotonic() - started > WAIT_S:
                    break
        await _closed_within(reader)
        writer.close()
        # 40 bytes were sent, 200 more would have taken 10 s.
        assert time.monotonic() - started < WAIT_S

    async def test_many_half_sent_requests_are_all_closed(self, address: tuple[str, int]) -> None:
        opened = [await asyncio.open_connection(*address) for _ in range(15)]
        for _, writer in opened:
            writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-")
        answers = await asyncio.gather(*(_closed_within(reader) for reader, _ in opened))
        for _, writer in opened:
            writer.close()
        assert all(answer.startswith(b"HTTP/1.1 408 ") for answer, _ in answers)

    async def test_headers_past_the_size_cap_are_answered_431(
        self, address: tuple[str, int]
    ) -> None:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"GET /ping HTTP/1.1\r\nX-Big: " + b"a" * 8192)
        answer, _ = await _closed_within(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 431 ")


class TestBodyAndKeepAlive:
    async def test_stalled_body_is_dropped_after_the_body_timeout(
        self, address: tuple[str, int]
    ) -> None:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        _, elapsed = await _closed_within(reader)
        writer.close()
        assert elapsed < WAIT_S / 2

    async def test_idle_keep_alive_connection_is_closed_after_its_timeout(
        self, address: tuple[str, int]
    ) -> None:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        answer, elapsed = await _closed_within(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert elapsed < WAIT_S

    async def test_prompt_requests_on_one_connection_are_served(
        self, address: tuple[str, int]
    ) -> None:
        reader, writer = await asyncio.open_connection(*address)
        for _ in range(3):
            writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab")
            status = await asyncio.wait_for(reader.readline(), WAIT_S)
            assert status.startswith(b"HTTP/1.1 200 ")
            while (await reader.readline()) != b"\r\n":
                pass
            assert await reader.readexactly(len(b'{"size":2}')) == b'{"size":2}'
            await asyncio.sleep(LIMITS.header_timeout_s * 0.6)
        writer.close()


class TestConnectionCap:
    async def test_connections_past_the_cap_are_answered_503_and_closed(
        self, address: tuple[str, int]
    ) -> None:
        held = [await asyncio.open_connection(*address) for _ in range(LIMITS.max_connections)]
        reader, writer = await asyncio.open_connection(*address)
        answer, elapsed = await _closed_within(reader)
        writer.close()
        for _, held_writer in held:
            held_writer.close()
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert elapsed < LIMITS.header_timeout_s


class TestSettings:
    def test_limits_come_from_the_http_settings(self) -> None:
        settings = RuntimeSettings(
            http_header_timeout_s=3, http_body_timeout_s=7, http_max_connections=9
        )
        limits = connection_limits(settings)
        assert (limits.header_timeout_s, limits.body_timeout_s, limits.max_connections) == (3, 7, 9)

    def test_header_timeout_is_read_from_its_environment_variable(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MLPLANE_HTTP_HEADER_TIMEOUT_S", "2.5")
        assert RuntimeSettings().http_header_timeout_s == 2.5
