"""The Prometheus metrics of the messaging runtime, one definition each.

Every service in a process shares the default registry, so each series carries the
`service` label (the embedded platform hosts all services in one process).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter(
    "mlplane_events_published_total",
    "Events published to the bus with a broker confirm.",
    ["service", "event_type"],
)
EVENTS_CONSUMED = Counter(
    "mlplane_events_consumed_total",
    "Events handled to completion (effects committed), by outcome.",
    ["service", "event_type", "outcome"],  # outcome: handled | duplicate
)
EVENTS_RETRIED = Counter(
    "mlplane_events_retried_total",
    "Deliveries that failed and were scheduled for another try.",
    ["service", "event_type"],
)
EVENTS_DEAD_LETTERED = Counter(
    "mlplane_events_dead_lettered_total",
    "Messages moved to a service's dead-letter queue.",
    ["service", "event_type", "reason_kind"],  # reason_kind: poison | exhausted
)
EVENTS_REPLAYED = Counter(
    "mlplane_events_replayed_total",
    "Dead letters moved back to their queue by a replay.",
    ["service"],
)
HANDLER_DURATION = Histogram(
    "mlplane_handler_duration_seconds",
    "Time to handle one event, inbox check and commit included.",
    ["service", "event_type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
OUTBOX_BACKLOG = Gauge(
    "mlplane_outbox_backlog",
    "Committed outbox rows not yet published.",
    ["service"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "mlplane_outbox_oldest_age_seconds",
    "Age of the oldest committed outbox row not yet published.",
    ["service"],
)
DEAD_LETTER_DEPTH = Gauge(
    "mlplane_dead_letter_depth",
    "Messages waiting in a service's dead-letter queue (sampled).",
    ["service"],
)
HOT_ANSWERS = Counter(
    "mlplane_http_hot_answers_total",
    "GET requests answered by a hot route, before the full app (`hot_path`).",
    ["service", "route"],
)
