"""The builder's Prometheus metrics, in the default registry that `/metrics` serves.

Every series carries `service` (the embedded platform hosts all services in one process,
and tests host several builders).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BUILDS_RUNNING = Gauge(
    "mlplane_builder_builds_running",
    "Builds a worker of this process is running now.",
    ["service"],
)
BUILD_DURATION = Histogram(
    "mlplane_builder_build_duration_seconds",
    "Time of one build try, from claim to recorded outcome, by outcome.",
    ["service", "outcome"],  # outcome: succeeded | reused | failed | retrying
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
BYTES_UPLOADED = Counter(
    "mlplane_builder_bytes_uploaded_total",
    "Bytes of blobs and manifests the builder sent to registries or wrote to layouts.",
    ["service"],
)
BUILD_FAILURES = Counter(
    "mlplane_builder_failures_total",
    "Failed build tries, by reason kind and whether the build is retried.",
    ["service", "reason", "final"],
)
