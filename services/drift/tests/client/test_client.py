"""The model-server client against a real local HTTP server: up, failing, slow and down."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from mlplane_drift.client import DriftClient


@dataclass
class SampleSink:
    """What the stand-in drift service received, and how it should answer."""

    requests: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    status: int = 202
    release: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    hang: bool = False

    @property
    def samples(self) -> list[dict[str, Any]]:
        return [s for _, body in self.requests for s in body["samples"]]


def _app(sink: SampleSink) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/drift/samples")
    async def samples(request: Request) -> Response:
        body = await request.json()
        sink.arrived.set()
        if sink.hang:
            await asyncio.to_thread(sink.release.wait)
        sink.requests.append((dict(request.headers), body))
        return Response(status_code=sink.status)

    return app


@pytest.fixture
def server() -> Iterator[tuple[str, SampleSink]]:
    sink = SampleSink()
    config = uvicorn.Config(
        _app(sink), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    while not instance.started:
        threading.Event().wait(0.01)
    port = instance.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", sink
    sink.release.set()
    instance.should_exit = True
    thread.join(10)


def _client(base_url: str, **options: Any) -> DriftClient:
    settings: dict[str, Any] = {
        "model": "churn",
        "version": 3,
        "environment": "prod",
        "flush_interval": 0.2,
        "retry_delay": 0.01,
    }
    settings.update(options)
    return DriftClient(base_url, "secret-key-123", **settings)


def test_samples_arrive_in_batches_with_the_api_key_and_json_shape(
    server: tuple[str, SampleSink],
) -> None:
    url, sink = server
    client = _client(url, batch_size=40)
    for i in range(100):
        assert client.record({"age": i, "score": np.float64(i / 2), "city": "oslo"}, i % 2, None)
    client.record(
        {"age": float("nan"), "score": np.float32(1.0), "city": None},
        prediction=np.array([0.1, np.nan]),
        label=1,
    )
    assert client.flush(timeout=10)
    client.close()

    assert len(sink.samples) == 101
    assert all(len(body["samples"]) <= 40 for _, body in sink.requests)
    headers, body = sink.requests[0]
    assert headers["authorization"] == "Bearer secret-key-123"
    assert {k: body[k] for k in ("model", "version", "environment")} == {
        "model": "churn",
        "version": 3,
        "environment": "prod",
    }
    assert sink.samples[0] == {
        "features": {"age": 0, "score": 0.0, "city": "oslo"},
        "prediction": 0,
        "label": None,
    }
    assert sink.samples[-1]["features"]["age"] is None  # NaN travels as null
    assert sink.samples[-1]["prediction"] == [0.1, None]
    assert sink.samples[-1]["features"]["score"] == 1.0
    stats = client.stats
    assert (stats.sent, stats.dropped, stats.recorded) == (101, 0, 101)


def test_a_down_service_drops_and_counts_without_raising() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = _client(f"http://127.0.0.1:{port}", batch_size=10)
    for i in range(25):
        assert client.record({"x": i}) is True
    assert client.flush(timeout=30)
    client.close()
    stats = client.stats
    assert stats.sent == 0
    assert stats.dropped_send_failed == 25
    assert stats.batches_failed == 3


def test_server_errors_are_retried_once_then_counted(server: tuple[str, SampleSink]) -> None:
    url, sink = server
    sink.status = 503
    client = _client(url, batch_size=5)
    for i in range(5):
        client.record({"x": i})
    assert client.flush(timeout=10)
    assert len(sink.requests) == 2  # the first try and one retry
    assert client.stats.dropped_send_failed == 5
    sink.status = 422  # not worth a retry
    client.record({"x": 1})
    assert client.flush(timeout=10)
    client.close()
    assert len(sink.requests) == 3
    assert client.stats.dropped_send_failed == 6


def test_a_slow_service_never_blocks_recording_and_full_queue_drops_are_counted(
    server: tuple[str, SampleSink],
) -> None:
    url, sink = server
    sink.hang = True
    client = _client(url, batch_size=5, max_queue=20, timeout=30.0)
    client.record({"x": -1})
    assert client.flush(timeout=0.5) is False  # the service holds the first batch
    assert sink.arrived.wait(10)
    # The sender is stuck in a request; recording must still return at once every time.
    results = [client.record({"x": i}) for i in range(1000)]
    assert results.count(True) == 20
    assert client.stats.dropped_queue_full == 980
    sink.release.set()
    assert client.flush(timeout=20)
    client.close()
    assert len(sink.samples) == 21
    assert client.stats.sent == 21


def test_sampling_and_unencodable_samples_and_late_records_are_counted(
    server: tuple[str, SampleSink],
) -> None:
    url, sink = server
    client = _client(url, sample_rate=0.25)
    kept = sum(client.record({"x": i}) for i in range(2000))
    assert client.stats.sampled_out == 2000 - kept
    assert 0 < kept < 2000
    assert client.flush(timeout=10)
    client.close()
    assert len(sink.samples) == kept
    assert client.record({"x": 1}) is False
    assert client.stats.dropped_closed == 1

    strict = _client(url)
    strict.record({"x": object()})
    strict.record({"x": 2})
    assert strict.flush(timeout=10)
    strict.close()
    assert strict.stats.dropped_invalid == 1
    assert sink.samples[-1]["features"] == {"x": 2}


def test_bad_settings_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        _client("http://127.0.0.1:9", sample_rate=1.5)
