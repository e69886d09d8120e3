"""The bus topology, in one place: exchanges, queues, bindings, retry and dead-letter names.

One durable topic exchange carries every event with routing key = CloudEvent
`type`. Each consuming service has one durable quorum queue bound to the types it
consumes; its replicas compete on it. Failed deliveries wait in per-level retry
queues, then land in the service's dead-letter queue through the dead-letter
exchange. Transports declare exactly this; the AsyncAPI document describes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from mlplane_contracts.events import (
    CI_RUN_COMPLETED,
    DEPLOYMENT_REQUESTED,
    DEPLOYMENT_STATUS_CHANGED,
    DRIFT_DETECTED,
    DRIFT_SAMPLES,
    IMAGE_BUILD_FAILED,
    IMAGE_BUILD_STARTED,
    IMAGE_BUILT,
    IMAGE_SCANNED,
    MODEL_ALIAS_CHANGED,
    MODEL_VERSION_REGISTERED,
)

EXCHANGE = "mlplane.events"
"""Durable topic exchange for every event; routing key = CloudEvent type."""
EXCHANGE_TYPE = "topic"

DEAD_LETTER_EXCHANGE = "mlplane.dlx"
"""Where messages go after their last try; each service's DLQ is bound by its name."""
DEAD_LETTER_EXCHANGE_TYPE = "direct"

QUEUE_PREFIX = "mlplane"
QUEUE_TYPE = "quorum"

ATTEMPT_HEADER = "x-mlplane-attempt"
"""On a delivery: which try this is, counting from 1."""
ATTEMPTS_HEADER = "x-mlplane-attempts"
"""On a dead letter: how many tries were made."""
ERROR_HEADER = "x-mlplane-error"
"""On a dead letter: the last error, as text."""
DEAD_LETTERED_AT_HEADER = "x-mlplane-dead-lettered-at"
"""On a dead letter: when it was parked, RFC 3339 in UTC."""
ORIGINAL_ROUTING_KEY_HEADER = "x-mlplane-original-routing-key"
"""On a retried or dead letter: the routing key it was first published with."""

SERVICES: tuple[str, ...] = ("registry", "builder", "scanner", "deployer", "drift", "gateway")

CONSUMES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "registry": (
            CI_RUN_COMPLETED,
            IMAGE_BUILD_STARTED,
            IMAGE_BUILT,
            IMAGE_BUILD_FAILED,
            IMAGE_SCANNED,
            DEPLOYMENT_STATUS_CHANGED,
        ),
        "builder": (MODEL_VERSION_REGISTERED,),
        "scanner": (IMAGE_BUILT, DEPLOYMENT_STATUS_CHANGED),
        # A version's lineage and image, the verdict of its image, and the two ways in.
        "deployer": (
            MODEL_VERSION_REGISTERED,
            IMAGE_BUILT,
            IMAGE_SCANNED,
            DEPLOYMENT_REQUESTED,
            MODEL_ALIAS_CHANGED,
            DRIFT_DETECTED,
        ),
        # Which versions (and teams) exist, and the prediction samples of model servers.
        "drift": (MODEL_VERSION_REGISTERED, DRIFT_SAMPLES),
        # The gateway relays these to other teams' webhook and SSE subscribers.
        "gateway": (DEPLOYMENT_STATUS_CHANGED, MODEL_ALIAS_CHANGED, DRIFT_DETECTED, IMAGE_SCANNED),
    }
)
"""Event types each service consumes: the bindings of its queue to `EXCHANGE`."""


PRODUCED_BY: Mapping[str, str] = MappingProxyType(
    {
        CI_RUN_COMPLETED: "gateway",
        MODEL_VERSION_REGISTERED: "registry",
        MODEL_ALIAS_CHANGED: "registry",
        IMAGE_BUILD_STARTED: "builder",
        IMAGE_BUILT: "builder",
        IMAGE_BUILD_FAILED: "builder",
        IMAGE_SCANNED: "scanner",
        DEPLOYMENT_REQUESTED: "gateway",
        DEPLOYMENT_STATUS_CHANGED: "deployer",
        DRIFT_DETECTED: "drift",
    }
)
"""The one service that publishes each event type (its `source` is `/mlplane/<service>`)."""

EXTERNAL_PRODUCERS: Mapping[str, str] = MappingProxyType({DRIFT_SAMPLES: "model servers"})
"""Who publishes each intake type (`events.INTAKE_PAYLOADS`): producers outside the
platform, whose `source` is their own (e.g. `/model-servers/<team>/<model>`)."""


def source_of(service: str) -> str:
    """The CloudEvent `source` of events the service publishes, `/mlplane/<service>`.

    Raises ValueError when `service` is not a lowercase name.
    """
    return f"/{QUEUE_PREFIX}/{_checked(service)}"


_SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def _checked(service: str) -> str:
    if _SERVICE_NAME.fullmatch(service) is None:
        raise ValueError(
            f"invalid service name {service!r}: use lowercase letters, digits, '-', '_'"
        )
    return service


def queue_name(service: str) -> str:
    """The service's own durable quorum queue, `mlplane.<service>`.

    Raises ValueError when `service` is not a lowercase name.
    """
    return f"{QUEUE_PREFIX}.{_checked(service)}"


def dead_letter_queue_name(service: str) -> str:
    """The service's dead-letter queue, `mlplane.<service>.dlq`.

    It is bound to `DEAD_LETTER_EXCHANGE` with its own name as routing key.
    Raises ValueError when `service` is not a lowercase name.
    """
    return f"{queue_name(service)}.dlq"


def retry_queue_name(service: str, level: int) -> str:
    """The delay queue for retry level `level` (from 1), `mlplane.<service>.retry.<level>`.

    Raises ValueError when `service` is not a lowercase name or `level` < 1.
    """
    if level < 1:
        raise ValueError(f"retry level counts from 1, got {level}")
    return f"{queue_name(service)}.retry.{level}"


def bindings(service: str) -> tuple[str, ...]:
    """The routing keys (event types) bound to the service's queue; () if it consumes none.

    Raises ValueError when `service` is not a lowercase name.
    """
    return CONSUMES.get(_checked(service), ())


def consumers_of(event_type: str) -> tuple[str, ...]:
    """The services whose queues receive `event_type`, in `SERVICES` order."""
    return tuple(service for service in SERVICES if event_type in CONSUMES.get(service, ()))
