"""The published contracts: a JSON Schema per event type and an AsyncAPI 3.0 document.

Each `<type>.json` is the JSON Schema of that type's **payload** (the CloudEvent's
`data`), because that is what the CloudEvents `dataschema` attribute names: every
event carries `dataschema = <SCHEMA_BASE_URI>/<type>.json`, the schema's `$id`.
The envelope's attributes are described once, in `asyncapi.json`, as the
`cloudEvents_*` message headers of binary content mode.

Output is deterministic (sorted keys, two-space indent, trailing newline), so the
committed files can be compared with what the code generates.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import pydantic_core
from pydantic.json_schema import models_json_schema

from mlplane_contracts import amqp
from mlplane_contracts import events as _events  # noqa: F401  (registers every type)
from mlplane_contracts.envelope import SPEC_VERSION, EventPayload
from mlplane_contracts.events import PUBLISHED_PAYLOADS
from mlplane_contracts.examples import example_event
from mlplane_contracts.topology import (
    CONSUMES,
    EXCHANGE,
    EXCHANGE_TYPE,
    EXTERNAL_PRODUCERS,
    PRODUCED_BY,
    SERVICES,
    queue_name,
)

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_FILE = "asyncapi.json"
DEFAULT_DIRECTORY = Path(__file__).resolve().parents[2] / "schemas"
"""`libs/contracts/schemas/` in the source tree."""

_AMQP_BINDING_VERSION = "0.3.0"
_COMPONENT_SCHEMAS = "#/components/schemas/{model}"


def schema_file_name(event_type: str) -> str:
    """The file a type's payload schema is written to: `<type>.json`."""
    return f"{event_type}.json"


def render(document: Mapping[str, Any]) -> str:
    """`document` as canonical JSON text: sorted keys, indent 2, UTF-8, trailing newline."""
    return pydantic_core.to_json(_sorted(document), indent=2).decode() + "\n"


def payload_schema(model: type[EventPayload]) -> dict[str, Any]:
    """The standalone JSON Schema (draft 2020-12) of one payload model, `$id` = its dataschema."""
    schema = model.model_json_schema(mode="validation")
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": model.dataschema(),
        "$comment": f"The data of CloudEvents of type {model.event_type}. Generated: "
        "python -m mlplane_contracts export",
        **schema,
    }


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 description of the bus: exchange, routing keys, queues, messages."""
    payloads = PUBLISHED_PAYLOADS
    # Every model lands in the shared definitions; the per-model results are
    # only `$ref`s into them, so they are not needed here.
    _, definitions = models_json_schema(
        [(model, "validation") for model in payloads.values()],
        ref_template=_COMPONENT_SCHEMAS,
    )
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
    schemas["CloudEventHeaders"] = _headers_schema()
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    channel_of_type: dict[str, str] = {}
    for event_type, model in payloads.items():
        name = model.__name__
        messages[name] = _message(event_type, model)
        channel = _lower_first(name)
        channel_of_type[event_type] = channel
        channels[channel] = _routing_key_channel(event_type, name)
        operations[f"publish{name}"] = {
            "action": "send",
            "title": _publish_title(event_type),
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"}],
            "bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": _AMQP_BINDING_VERSION}},
        }
    for service in SERVICES:
        consumed = CONSUMES.get(service, ())
        if not consumed:
            continue
        channel = f"{service}Queue"
        names = [payloads[event_type].__name__ for event_type in consumed]
        channels[channel] = _queue_channel(service, names)
        operations[f"{service}Consumes"] = {
            "action": "receive",
            "title": f"{service} consumes from {queue_name(service)}",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in names],
            "bindings": {"amqp": {"ack": True, "bindingVersion": _AMQP_BINDING_VERSION}},
        }
    return {
        "asyncapi": "3.0.0",
        "id": "urn:io:mlplane:events",
        "info": {
            "title": "mlplane events",
            "version": _contracts_version(),
            "description": _DESCRIPTION,
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The platform's RabbitMQ; the events exchange is "
                f"`{EXCHANGE}` ({EXCHANGE_TYPE}, durable).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def generate() -> dict[str, str]:
    """Every published file, by name, as the text to write."""
    files = {
        schema_file_name(event_type): render(payload_schema(model))
        for event_type, model in PUBLISHED_PAYLOADS.items()
    }
    files[ASYNCAPI_FILE] = render(asyncapi_document())
    return files


def write(directory: Path = DEFAULT_DIRECTORY) -> list[Path]:
    """Write every published file into `directory` (created if missing); the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sorted(generate().items()):
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path = DEFAULT_DIRECTORY) -> list[str]:
    """Names of files in `directory` that differ from what the code generates.

    A file is stale when missing, different, or a `.json` file the code no
    longer generates. Empty when everything is up to date.
    """
    expected = generate()
    problems = []
    for name, text in sorted(expected.items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} (missing)")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{name} (differs)")
    if directory.is_dir():
        for path in sorted(directory.glob("*.json")):
            if path.name not in expected:
                problems.append(f"{path.name} (no longer generated)")
    return problems


_DESCRIPTION = (
    "Events between mlplane services. Every event is a CloudEvents 1.0 event "
    "published to one durable topic exchange with routing key = the event type. "
    "Messages travel in binary content mode: attributes as `cloudEvents_*` "
    "headers, data as the JSON body (content type application/json). Consumers "
    "also accept structured mode (application/cloudevents+json) and the "
    "`cloudEvents:` and `ce-` header prefixes. To subscribe, bind your own queue "
    "to the exchange with the routing keys you need. A breaking change is a new "
    "`.vN` type, published beside the old one."
)


def _headers_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "CloudEvents attributes as AMQP headers (binary content mode).",
        "properties": {
            "cloudEvents_specversion": {"type": "string", "const": SPEC_VERSION},
            "cloudEvents_id": {"type": "string", "minLength": 1},
            "cloudEvents_source": {
                "type": "string",
                "minLength": 1,
                "description": "/mlplane/<service> for platform services",
            },
            "cloudEvents_type": {"type": "string", "minLength": 1},
            "cloudEvents_time": {"type": "string", "format": "date-time"},
            "cloudEvents_subject": {
                "type": "string",
                "description": (
                    "The entity, e.g. models/risk/fraud/versions/7 (mlplane_contracts.subjects)"
                ),
            },
            "cloudEvents_dataschema": {"type": "string", "format": "uri"},
            "cloudEvents_traceparent": {
                "type": "string",
                "description": "W3C trace context (CloudEvents distributed tracing extension)",
            },
            "cloudEvents_tracestate": {"type": "string"},
            "cloudEvents_sequence": {
                "type": "integer",
                "minimum": 0,
                "description": "Order of this event among its subject's events, from the outbox",
            },
        },
        "required": [
            "cloudEvents_specversion",
            "cloudEvents_id",
            "cloudEvents_source",
            "cloudEvents_type",
            "cloudEvents_time",
        ],
    }


def _message(event_type: str, model: type[EventPayload]) -> dict[str, Any]:
    return {
        "name": event_type,
        "title": model.__name__,
        "summary": (model.__doc__ or event_type).strip().splitlines()[0],
        "contentType": "application/json",
        "headers": {
            "allOf": [
                {"$ref": "#/components/schemas/CloudEventHeaders"},
                {
                    "type": "object",
                    "properties": {
                        "cloudEvents_type": {"const": event_type},
                        "cloudEvents_dataschema": {"const": model.dataschema()},
                    },
                },
            ]
        },
        "payload": {"$ref": _COMPONENT_SCHEMAS.format(model=model.__name__)},
        "correlationId": {"location": "$message.header#/cloudEvents_id"},
        "bindings": {"amqp": {"messageType": event_type, "bindingVersion": _AMQP_BINDING_VERSION}},
        "examples": _examples(event_type),
    }


def _examples(event_type: str) -> list[dict[str, Any]]:
    try:
        message = amqp.encode(example_event(event_type))
    except KeyError:  # a type registered outside this package has no example
        return []
    return [
        {
            "name": "example",
            "headers": message.headers,
            "payload": pydantic_core.from_json(message.body),
        }
    ]


def _routing_key_channel(event_type: str, message_name: str) -> dict[str, Any]:
    return {
        "address": event_type,
        "description": f"Events of type {event_type} on the `{EXCHANGE}` exchange.",
        "messages": {message_name: {"$ref": f"#/components/messages/{message_name}"}},
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": EXCHANGE,
                    "type": EXCHANGE_TYPE,
                    "durable": True,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": _AMQP_BINDING_VERSION,
            }
        },
    }


def _queue_channel(service: str, message_names: list[str]) -> dict[str, Any]:
    return {
        "address": queue_name(service),
        "description": f"The {service} service's quorum queue, bound to `{EXCHANGE}` "
        "for the types it consumes.",
        "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in message_names},
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {
                    "name": queue_name(service),
                    "durable": True,
                    "exclusive": False,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": _AMQP_BINDING_VERSION,
            }
        },
    }


def _publish_title(event_type: str) -> str:
    if event_type in EXTERNAL_PRODUCERS:
        return f"{EXTERNAL_PRODUCERS[event_type]} publish {event_type}"
    return f"{PRODUCED_BY.get(event_type, 'a producer')} publishes {event_type}"


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _contracts_version() -> str:
    try:
        return metadata.version("mlplane-contracts")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted(item) for item in value]
    return value
