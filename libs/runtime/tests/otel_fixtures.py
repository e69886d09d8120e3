"""One process-wide OpenTelemetry tracer provider whose spans tests can read.

OpenTelemetry accepts a global tracer provider once per process, so every test that
reads spans shares this one: the first call installs an SDK provider (unless one is
already global, which then gets the exporter) with an in-memory exporter behind a
synchronous processor. Tests clear the exporter before they start.

Use it from a test module (pytest imports tests with importlib, so import it
relatively) through a small local fixture:

    from .otel_fixtures import fresh_span_exporter

    @pytest.fixture
    def spans() -> InMemorySpanExporter:
        return fresh_span_exporter()
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter: InMemorySpanExporter | None = None


def session_span_exporter() -> InMemorySpanExporter:
    """The process's in-memory span exporter; installs the tracer provider on first use."""
    global _exporter
    if _exporter is not None:
        return _exporter
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "mlplane-tests"}))
        trace.set_tracer_provider(provider)
    _exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(_exporter))
    return _exporter


def fresh_span_exporter() -> InMemorySpanExporter:
    """The session's exporter with the spans of earlier tests cleared."""
    exporter = session_span_exporter()
    exporter.clear()
    return exporter


def spans_with_trace_id(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    """Finished spans of `trace_id` (tests may share the exporter with running work)."""
    return [
        span
        for span in exporter.get_finished_spans()
        if span.context is not None and span.context.trace_id == trace_id
    ]
