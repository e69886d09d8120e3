"""The process's OpenTelemetry tracer provider, exporting by OTLP over HTTP when asked.

OpenTelemetry allows one global tracer provider per process; the embedded platform
hosts every service in one process and tests install their own, so the first
provider set wins and later calls return it unchanged.
"""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_TRACES_PATH = "/v1/traces"

_log = logging.getLogger("mlplane.telemetry")


def otlp_traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a collector `endpoint` (base URL or full traces URL)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(_TRACES_PATH) else endpoint + _TRACES_PATH


def build_tracer_provider(
    service_name: str, otlp_endpoint: str | None, *, service_version: str | None = None
) -> TracerProvider:
    """A new SDK tracer provider for `service_name`, not installed anywhere.

    Its resource carries `service.name` (and `service.version` when given). With
    `otlp_endpoint` (e.g. `http://tempo:4318`; `/v1/traces` is appended unless
    present) finished spans go to it through a BatchSpanProcessor; without one,
    spans still exist (trace ids flow into logs and events) but are not exported.
    """
    attributes: dict[str, str] = {SERVICE_NAME: service_name}
    if service_version is not None:
        attributes[SERVICE_VERSION] = service_version
    provider = TracerProvider(resource=Resource.create(attributes))
    if otlp_endpoint:
        # Imported only when spans are exported: it brings protobuf (about 4 MB a process).
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=otlp_traces_url(otlp_endpoint))
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def configure_tracing(
    service_name: str, otlp_endpoint: str | None, *, service_version: str | None = None
) -> TracerProvider:
    """Install and return the global SDK tracer provider; return the existing one if set.

    Idempotent: when an SDK provider is already global (an earlier call, another
    service of the embedded platform, a test) it is returned unchanged. Otherwise
    a provider from `build_tracer_provider` is installed. When a provider that is
    not the SDK's is already global, the new one is returned unregistered and a
    warning logged. Never raises for an unreachable endpoint: export failures are
    the exporter's to log.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = build_tracer_provider(service_name, otlp_endpoint, service_version=service_version)
    if isinstance(current, trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)
    else:
        _log.warning(
            "a %s is already the global tracer provider; spans of %s use it",
            type(current).__name__,
            service_name,
        )
    return provider
