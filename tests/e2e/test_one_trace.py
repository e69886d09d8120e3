"""One trace from a CI webhook to the scan's verdict, as `make run` exports it by OTLP.

The platform runs as `make run` starts it, with `MLPLANE_OTLP_ENDPOINT` pointing at
an OTLP/HTTP receiver this test serves. A signed GitHub webhook (the custom
`mlplane.run` event, naming an artifact uploaded through the registry) enters the
gateway; then, with nobody calling anything else, the registry registers the
version, the builder records and runs the build as a leased job, the scanner
records and runs the scan as one, and the registry records the verdict. Every one
of those spans must belong to the webhook's trace, each child of the one before.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import RunningPlatform, running_platform
from .otlp import OtlpReceiver, ReceivedSpan, ancestor_names
from .test_embedded_flow import LINEAGE, TEAM, _await_chain, _ok

SPANS_WITHIN_S = 30.0


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def traced_platform(
    platform_database: str, tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver
) -> Iterator[RunningPlatform]:
    """`make run`, exporting its spans to `receiver` (batches sent every 100 ms)."""
    yield from running_platform(
        platform_database,
        tmp_path_factory,
        {"MLPLANE_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"},
    )


@pytest.fixture(scope="module")
def http(traced_platform: RunningPlatform) -> Iterator[httpx.Client]:
    key = (traced_platform.data_dir / "gateway" / "initial-admin-key").read_text().strip()
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=traced_platform.url, headers=headers, timeout=30.0) as client:
        yield client


def _upload(http: httpx.Client, model: str, content: bytes) -> dict[str, Any]:
    """Create `model` and upload `content` through the registry's signed part URLs."""
    _ok(http.post("/v1/registry/models", json={"name": model}), 201)
    sha256 = hashlib.sha256(content).hexdigest()
    plan = _ok(
        http.post(
            f"/v1/registry/models/{model}/uploads",
            json={"size_bytes": len(content), "sha256": sha256, "filename": "model.pkl"},
        ),
        201,
    )
    parts = []
    offset = 0
    for part in plan["parts"]:
        chunk = content[offset : offset + part["size_bytes"]]
        offset += part["size_bytes"]
        put = httpx.put(part["url"], content=chunk, timeout=30.0)
        assert put.status_code == 200, f"part {part['number']}: {put.status_code} {put.text}"
        parts.append({"number": part["number"], "etag": put.headers["etag"]})
    artifact: dict[str, Any] = _ok(
        http.post(
            f"/v1/registry/models/{model}/uploads/{plan['upload_id']}/complete",
            json={"parts": parts},
        )
    )
    return artifact


def _github_webhook(http: httpx.Client, model: str, artifact: dict[str, Any]) -> None:
    """The custom `mlplane.run` event, signed with the team's (new) webhook secret."""
    secret = _ok(http.put(f"/v1/teams/{TEAM}/webhook-secret"))["secret"]
    body = json.dumps(
        {
            "model": model,
            "run_id": "9001.1",
            "conclusion": "succeeded",
            "completed_at": "2026-12-15T10:00:00Z",
            "artifact": {
                "uri": artifact["uri"],
                "sha256": artifact["sha256"],
                "size_bytes": artifact["size_bytes"],
                "framework": "sklearn",
            },
            "lineage": {k: LINEAGE[k] for k in ("git_repository", "commit_sha", "ci_run_url")},
        }
    ).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    answer = httpx.post(
        f"{str(http.base_url).rstrip('/')}/v1/webhooks/github/{TEAM}",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "mlplane.run",
            "X-GitHub-Delivery": "trace-e2e-1",
            "X-Hub-Signature-256": signature,
        },
        timeout=30.0,
    )
    assert answer.status_code == 202, answer.text


def _await_registered(http: httpx.Client, platform: RunningPlatform, model: str) -> None:
    """Until the registry registered version 1 from the CI run event (on the bus)."""
    deadline = time.monotonic() + SPANS_WITHIN_S
    while http.get(f"/v1/registry/models/{model}/versions/1").status_code == 404:
        if time.monotonic() > deadline:
            pytest.fail(f"no version of {model} was registered:\n{platform.log_tail()}")
        time.sleep(0.2)


def _one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, (name, sorted({span.name for span in spans}))
    return found[0]


def test_one_trace_runs_from_the_webhook_through_the_build_and_the_scan(
    traced_platform: RunningPlatform, http: httpx.Client, receiver: OtlpReceiver
) -> None:
    model = "fraud-traced"
    artifact = _upload(http, model, b"\x80\x04\x95traced-forest\x00" + bytes(range(256)) * 16)
    _github_webhook(http, model, artifact)
    _await_registered(http, traced_platform, model)
    _await_chain(http, traced_platform, model)

    def in_trace() -> tuple[ReceivedSpan, list[ReceivedSpan]]:
        spans = receiver.snapshot()
        webhooks = [s for s in spans if "/webhooks/github/" in s.name and not s.parent_id]
        assert len(webhooks) == 1, sorted({s.name for s in spans})
        root = webhooks[0]
        return root, [s for s in spans if s.trace_id == root.trace_id]

    # The scanned verdict's consumer span is the last one of the chain.
    deadline = time.monotonic() + SPANS_WITHIN_S
    last = "registry process io.mlplane.image.scanned.v1"
    while True:
        try:
            root, trace = in_trace()
            if any(s.name == last for s in trace):
                break
        except AssertionError:
            pass
        if time.monotonic() > deadline:
            root, trace = in_trace()
            pytest.fail(f"no {last!r} span in the trace: {sorted(s.name for s in trace)}")
        time.sleep(0.2)

    by_id = {span.span_id: span for span in trace}

    def ancestors(span: ReceivedSpan) -> list[str]:
        return ancestor_names(span, trace)

    # Each hop, with the service that made it and the hop it continues.
    chain = [
        ("registry process io.mlplane.ci.run.completed.v1", "registry"),
        ("builder process io.mlplane.model.version.registered.v1", "builder"),
        ("builder build", "builder"),
        ("scanner process io.mlplane.image.built.v1", "scanner"),
        ("scanner scan", "scanner"),
        (last, "registry"),
    ]
    previous = root
    for name, service in chain:
        span = _one(trace, name)
        assert span.attributes.get("mlplane.service") == service, (name, span.attributes)
        # The hop descends from the one before (the bus hop directly, or through the
        # outbox relay's and the in-process bus's spans, when there are any).
        assert previous.name in [by_id[span.parent_id].name, *ancestors(span)], (
            name,
            ancestors(span),
        )
        previous = span
    # The jobs are the direct children of the handler that recorded them, and their
    # events leave from inside the job's span.
    build, scan = _one(trace, "builder build"), _one(trace, "scanner scan")
    assert by_id[build.parent_id].name == "builder process io.mlplane.model.version.registered.v1"
    assert by_id[scan.parent_id].name == "scanner process io.mlplane.image.built.v1"
    assert by_id[_one(trace, "scanner process io.mlplane.image.built.v1").parent_id] is build
    assert by_id[_one(trace, last).parent_id] is scan
    assert build.attributes["mlplane.model"] == model
    assert scan.attributes["mlplane.model"] == model
