"""The FastAPI example model server records its predictions through the client."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

EXAMPLE = Path(__file__).parents[2] / "examples" / "fastapi_model_server.py"


def test_example_server_predicts_and_sends_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[bytes] = []

    def drift_service(request: httpx.Request) -> httpx.Response:
        received.append(request.content)
        return httpx.Response(202)

    spec = importlib.util.spec_from_file_location("fastapi_model_server", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("MLPLANE_URL", "http://drift.test")
    monkeypatch.setenv("MLPLANE_API_KEY", "k")
    monkeypatch.setenv("DRIFT_SAMPLE_RATE", "1.0")
    real_client = module.DriftClient

    def with_transport(*args: object, **kwargs: object) -> object:
        return real_client(*args, transport=httpx.MockTransport(drift_service), **kwargs)

    monkeypatch.setattr(module, "DriftClient", with_transport)
    with TestClient(module.app) as http:
        for age in (25, 40, 19):
            answer = http.post(
                "/predict", json={"age": age, "income": 60_000, "city": "oslo", "has_card": True}
            )
            assert answer.status_code == 200
        assert http.app.state.drift.flush(timeout=10)
        stats = http.get("/drift-client").json()
    assert stats["sent"] == 3
    assert b'"city": "oslo"' in b"".join(received)
