"""Trace context across the bus: written into the CloudEvent once, continued by consumers.

The CloudEvents distributed-tracing extension carries W3C `traceparent` and
`tracestate`; they are set when the event is created (in the producer's span) and
never rewritten in transit, so the consumer's span joins the producer's trace.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from mlplane_contracts.envelope import CloudEvent
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER_NAME = "mlplane"


def current_trace_context() -> tuple[str | None, str | None]:
    """The active span's `(traceparent, tracestate)`, or `(None, None)` outside a span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent"), carrier.get("tracestate") or None


@contextmanager
def consumer_span(event: CloudEvent, service: str) -> Iterator[Span]:
    """A CONSUMER span for handling `event`, child of the producer's context."""
    carrier = {}
    if event.traceparent:
        carrier["traceparent"] = event.traceparent
    if event.tracestate:
        carrier["tracestate"] = event.tracestate
    parent = _PROPAGATOR.extract(carrier)
    tracer = trace.get_tracer(_TRACER_NAME)
    with tracer.start_as_current_span(
        f"{service} process {event.type}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "rabbitmq",
            "messaging.operation.type": "process",
            "messaging.destination.name": event.type,
            "messaging.message.id": event.id,
            "cloudevents.event_id": event.id,
            "cloudevents.event_source": event.source,
            "cloudevents.event_type": event.type,
            "cloudevents.event_subject": event.subject or "",
            "mlplane.service": service,
        },
    ) as span:
        yield span


def _parent_context(traceparent: str | None, tracestate: str | None) -> Context:
    carrier = {}
    if traceparent:
        carrier["traceparent"] = traceparent
        if tracestate:
            carrier["tracestate"] = tracestate
    return _PROPAGATOR.extract(carrier)


@contextmanager
def continuing(traceparent: str | None, tracestate: str | None) -> Iterator[None]:
    """Make the stored context `traceparent`/`tracestate` the current one (no new span).

    Events emitted inside join that trace; with no `traceparent` nothing changes.
    """
    if not traceparent:
        yield
        return
    token = otel_context.attach(_parent_context(traceparent, tracestate))
    try:
        yield
    finally:
        otel_context.detach(token)


@contextmanager
def job_span(
    name: str,
    traceparent: str | None,
    tracestate: str | None,
    attributes: Mapping[str, str | int] | None = None,
) -> Iterator[Span]:
    """A span for running a stored job, child of the context stored with it (the span
    that created the job), or the root of a new trace when none was stored."""
    tracer = trace.get_tracer(_TRACER_NAME)
    with tracer.start_as_current_span(
        name,
        context=_parent_context(traceparent, tracestate),
        kind=SpanKind.CONSUMER,
        attributes=dict(attributes or {}),
    ) as span:
        yield span
