"""MLflow's model-registry webhooks on mlplane's events: which events, payloads, signatures.

MLflow (3.3+) names a webhook's events `<entity>.<action>` and delivers each as a
JSON POST `{"entity", "action", "timestamp", "data"}` with the headers
`X-MLflow-Delivery-Id`, `X-MLflow-Timestamp` (unix seconds) and, when the webhook has
a secret, `X-MLflow-Signature: v1,<base64 HMAC-SHA256>` over
`<delivery id>.<timestamp>.<body>` keyed with the secret. The delivery id is the
CloudEvent id here, the same on every try, so a receiver drops repeats (deliveries
are at least once, retried with backoff). Pure: no I/O.

The registry announces what MLflow's events need of it: a version registered (READY,
its artifact verified) and an alias moved or removed. MLflow's other registry events
(a model created, tags set) have no platform event, and a webhook asking for them is
refused naming the ones served.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any, Final

from mlplane_contracts import events as ev
from mlplane_contracts.envelope import CloudEvent

DELIVERY_ID_HEADER: Final = "X-MLflow-Delivery-Id"
TIMESTAMP_HEADER: Final = "X-MLflow-Timestamp"
SIGNATURE_HEADER: Final = "X-MLflow-Signature"
SIGNATURE_VERSION: Final = "v1"

MODEL_VERSION_CREATED: Final = "model_version.created"
ALIAS_CREATED: Final = "model_version_alias.created"
ALIAS_DELETED: Final = "model_version_alias.deleted"
SERVED_EVENTS: Final = {
    MODEL_VERSION_CREATED: ev.MODEL_VERSION_REGISTERED,
    ALIAS_CREATED: ev.MODEL_ALIAS_CHANGED,
    ALIAS_DELETED: ev.MODEL_ALIAS_CHANGED,
}
"""MLflow event -> the platform event type it is made from."""
KNOWN_ENTITIES: Final = frozenset(
    {
        "registered_model",
        "model_version",
        "model_version_tag",
        "model_version_alias",
        "prompt",
        "prompt_version",
        "prompt_tag",
        "prompt_version_tag",
        "prompt_alias",
    }
)
KNOWN_ACTIONS: Final = frozenset({"created", "updated", "deleted", "set"})

# The registry keeps what MLflow carries and mlplane has no field for in version tags
# under this prefix (`mlplane_registry.mlflow.tags`); MLflow's payload shows them as
# MLflow does, and never mlplane's own tags.
_HIDDEN_PREFIX: Final = "mlplane."
_SOURCE_TAG: Final = "mlplane.mlflow.source"
_RUN_ID_TAG: Final = "mlplane.mlflow.run_id"
_DESCRIPTION_TAG: Final = "mlplane.mlflow.description"


def event_name(entity: str, action: str) -> str:
    """MLflow's proto names (`MODEL_VERSION`, `CREATED`) or the Python ones, as one name."""
    return f"{entity.strip().lower()}.{action.strip().lower()}"


def types_for(events: tuple[str, ...]) -> tuple[str, ...]:
    """The platform event types a webhook on `events` must see."""
    return tuple(sorted({SERVED_EVENTS[e] for e in events}))


def mlflow_event_of(event: CloudEvent) -> str | None:
    """The MLflow event a platform event is, None when it is none."""
    data = event.data
    if isinstance(data, ev.ModelVersionRegistered):
        return MODEL_VERSION_CREATED
    if isinstance(data, ev.ModelAliasChanged):
        return ALIAS_CREATED if data.version is not None else ALIAS_DELETED
    return None


def payload_data(event: CloudEvent) -> dict[str, Any]:
    """MLflow's `data` of the event (`mlflow.webhooks.types`)."""
    data = event.data
    if isinstance(data, ev.ModelVersionRegistered):
        tags = dict(data.tags)
        return {
            "name": data.model,
            "version": str(data.version),
            "source": tags.get(_SOURCE_TAG) or data.artifact.uri,
            "run_id": tags.get(_RUN_ID_TAG) or None,
            "tags": {k: v for k, v in tags.items() if not k.startswith(_HIDDEN_PREFIX)},
            "description": tags.get(_DESCRIPTION_TAG) or None,
        }
    if isinstance(data, ev.ModelAliasChanged):
        body: dict[str, Any] = {"name": data.model, "alias": data.alias}
        if data.version is not None:
            body["version"] = str(data.version)
        return body
    return {}


def body_of(mlflow_event: str, data: dict[str, Any], at: datetime) -> bytes:
    entity, _, action = mlflow_event.partition(".")
    document = {"entity": entity, "action": action, "timestamp": at.isoformat(), "data": data}
    return json.dumps(document).encode()


def signature(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """MLflow's `X-MLflow-Signature` value for `body`."""
    message = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed(secret: str, delivery_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one MLflow delivery of `body`."""
    return {
        "Content-Type": "application/json",
        DELIVERY_ID_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, delivery_id, timestamp, body),
    }


def mlflow_request(secret: str, event: CloudEvent, timestamp: int) -> tuple[dict[str, str], bytes]:
    """Headers and body delivering `event` as MLflow does."""
    name = mlflow_event_of(event) or ""
    body = body_of(name, payload_data(event), event.time or datetime.now(UTC))
    return signed(secret, event.id, timestamp, body), body


def example_data(mlflow_event: str) -> dict[str, Any]:
    """What a test delivery of `mlflow_event` carries (MLflow's examples' shape)."""
    if mlflow_event == MODEL_VERSION_CREATED:
        return {
            "name": "example_model",
            "version": "1",
            "source": "models:/123",
            "run_id": "abcd1234abcd5678",
            "tags": {"example_key": "example_value"},
            "description": "An example model version",
        }
    if mlflow_event == ALIAS_CREATED:
        return {"name": "example_model", "alias": "example_alias", "version": "1"}
    return {"name": "example_model", "alias": "example_alias"}
