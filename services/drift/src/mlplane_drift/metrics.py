"""The drift service's Prometheus metrics: the last verdict per model, environment and
feature (gauges), and what intake took or refused (counters)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

FEATURE_SCORE = Gauge(
    "mlplane_drift_feature_score",
    "The last window's drift score of a feature (the method's statistic or distance).",
    ["service", "team", "model", "environment", "feature", "method"],
)
FEATURE_DRIFTED = Gauge(
    "mlplane_drift_feature_drifted",
    "1 when the last window found the feature drifted, else 0.",
    ["service", "team", "model", "environment", "feature"],
)
FEATURE_PSI = Gauge(
    "mlplane_drift_feature_psi",
    "The last window's population stability index of a feature.",
    ["service", "team", "model", "environment", "feature"],
)
DRIFT_SHARE = Gauge(
    "mlplane_drift_share",
    "Share of features the last window found drifted.",
    ["service", "team", "model", "environment"],
)
DATASET_DRIFTED = Gauge(
    "mlplane_drift_dataset_drifted",
    "1 when the last window's drifted share reached the threshold, else 0.",
    ["service", "team", "model", "environment"],
)
SAMPLES = Counter(
    "mlplane_drift_samples_total",
    "Prediction samples taken into windows, by way in (http, bus, parquet).",
    ["service", "source"],
)
REFUSED = Counter(
    "mlplane_drift_batches_refused_total",
    "Sample batches refused, by way in and reason (problem type's last part).",
    ["service", "source", "reason"],
)
VERDICTS = Counter(
    "mlplane_drift_verdicts_total",
    "Windows judged, by outcome (clean, drifted, alerted, failed).",
    ["service", "outcome"],
)
