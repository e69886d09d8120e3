"""The scanner's Prometheus metrics: scans running, how long they take, what they find."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SCANS_RUNNING = Gauge(
    "mlplane_scanner_scans_running",
    "Image scans (Trivy scan and SBOM) running now.",
    ["service"],
)
SCAN_DURATION = Histogram(
    "mlplane_scanner_scan_duration_seconds",
    "Time from claiming an image scan to its verdict, by outcome.",
    ["service", "outcome"],  # outcome: passed | failed | error | retried
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
SCAN_QUEUE_WAIT = Histogram(
    "mlplane_scanner_queue_wait_seconds",
    "Time an image scan waited between its request and a free scan slot.",
    ["service"],
    buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800),
)
FINDINGS = Counter(
    "mlplane_scanner_findings_total",
    "Findings reported by image scans, by kind and severity (before policy).",
    ["service", "kind", "severity"],
)
VERDICTS = Counter(
    "mlplane_scanner_verdicts_total",
    "Verdicts decided for the emitted environment, by verdict.",
    ["service", "verdict"],
)
