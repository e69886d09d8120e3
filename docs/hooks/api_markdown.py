"""OpenAPI 3.1 and AsyncAPI 3.0 documents as Markdown pages: no script, no network.

Pure functions from a document to a page. Every link a page holds points at an anchor
the same page defines (`{#...}` through attr_list), so `mkdocs build --strict` checks
them like any other link.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

METHODS = ("get", "put", "post", "patch", "delete", "head", "options")
SCHEMA_REF = "#/components/schemas/"
MESSAGE_REF = "#/components/messages/"


def openapi_page(service: str, document: Mapping[str, Any]) -> str:
    """The page of one service's HTTP API: an index of its routes, each route, its schemas."""
    prefix = "" if service == "gateway" else f"/v1/{service}"
    lines = [
        f"# {service} HTTP API",
        "",
        f"Generated at build time from the code: the OpenAPI document (version "
        f"{document.get('openapi', '?')}) of the app `mlplane serve {service}` builds. ",
    ]
    if prefix:
        lines += [
            f"Through the gateway, every path below is under `{prefix}` (e.g. "
            f"`GET {prefix}{_first_path(document)}`); the service itself answers only the "
            "identity the gateway signs. `mlplane up` and `mlplane serve` also mount "
            f"`/dead-letters` (see [Dead letters](../operations/dead-letters.md)).",
        ]
    else:
        lines += [
            "These are the gateway's own routes; it also forwards `/v1/<service>/...` to "
            "each service (the other pages of this reference)."
        ]
    lines += ["", "| method | path | summary |", "|---|---|---|"]
    operations = list(_operations(document))
    for method, path, operation in operations:
        anchor = _operation_anchor(method, path)
        lines.append(
            f"| {method.upper()} | [`{_cell(path)}`](#{anchor}) | {_cell(_summary(operation))} |"
        )
    lines.append("")
    for method, path, operation in operations:
        lines += _operation(method, path, operation)
    schemas = document.get("components", {}).get("schemas", {})
    if schemas:
        lines += ["## Schemas", ""]
        for name in sorted(schemas):
            lines += _schema_section(name, schemas[name])
    return "\n".join(lines) + "\n"


def asyncapi_page(document: Mapping[str, Any]) -> str:
    """The page of the events: channels, who sends and receives what, each payload."""
    info = document.get("info", {})
    lines = [
        "# Events (AsyncAPI)",
        "",
        f"Generated at build time from `mlplane_contracts` (AsyncAPI "
        f"{document.get('asyncapi', '?')}; the committed copy is "
        "`libs/contracts/schemas/asyncapi.json`). " + str(info.get("description", "")),
        "",
        "## Operations",
        "",
        "| operation | action | channel | messages |",
        "|---|---|---|---|",
    ]
    channels = document.get("channels", {})
    for name, operation in sorted(document.get("operations", {}).items()):
        channel = _last(operation.get("channel", {}).get("$ref", ""))
        address = channels.get(channel, {}).get("address", channel)
        messages = ", ".join(
            f"[{_last(m['$ref'])}](#{_anchor('message', _last(m['$ref']))})"
            for m in operation.get("messages", [])
        )
        lines.append(
            f"| {_cell(operation.get('title', name))} | {operation.get('action', '')} | "
            f"`{address}` | {messages} |"
        )
    lines += ["", "## Messages", ""]
    components = document.get("components", {})
    for name, message in sorted(components.get("messages", {}).items()):
        event_type = message.get("bindings", {}).get("amqp", {}).get("messageType", "")
        lines += [f"### {name} {{#{_anchor('message', name)}}}", ""]
        if event_type:
            lines += [f"Event type `{event_type}`, content type `{message.get('contentType')}`."]
        if message.get("summary") or message.get("description"):
            lines += ["", str(message.get("summary") or message.get("description"))]
        payload = message.get("payload", {})
        lines += ["", f"Payload: {_type(payload)}", ""]
        for example in message.get("examples", [])[:1]:
            lines += [
                "Example payload:",
                "",
                "```json",
                json.dumps(example.get("payload", {}), indent=2, sort_keys=True),
                "```",
                "",
            ]
    lines += ["## Schemas", ""]
    for name, schema in sorted(components.get("schemas", {}).items()):
        lines += _schema_section(name, schema)
    return "\n".join(lines) + "\n"


def _operations(document: Mapping[str, Any]) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def _first_path(document: Mapping[str, Any]) -> str:
    for _method, path, _operation in _operations(document):
        if path not in ("/healthz", "/readyz", "/metrics"):
            return path
    return "/..."


def _operation(method: str, path: str, operation: Mapping[str, Any]) -> list[str]:
    lines = [f"### {method.upper()} `{path}` {{#{_operation_anchor(method, path)}}}", ""]
    description = operation.get("description") or operation.get("summary")
    if description:
        lines += [_text(description), ""]
    scope = operation.get("x-mlplane-scope")
    if scope:
        lines += [f"Scope: `{scope}`.", ""]
    limit = operation.get("x-mlplane-max-body-bytes")
    if limit:
        lines += [f"Request bodies up to {limit:,} bytes.", ""]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        for parameter in parameters:
            lines.append(
                f"| `{parameter.get('name')}` | {parameter.get('in')} | "
                f"{_type(parameter.get('schema', {}))} | "
                f"{'yes' if parameter.get('required') else 'no'} | "
                f"{_cell(parameter.get('description', ''))} |"
            )
        lines.append("")
    body = operation.get("requestBody")
    if body:
        kinds = "; ".join(
            f"`{kind}` {_type(media.get('schema', {}))}"
            for kind, media in body.get("content", {}).items()
        )
        lines += [f"Request body{' (required)' if body.get('required') else ''}: {kinds}", ""]
    responses = operation.get("responses", {})
    if responses:
        lines += ["| status | description | body |", "|---|---|---|"]
        for status, response in responses.items():
            content = response.get("content", {})
            kinds = "; ".join(
                f"`{kind}` {_type(media.get('schema', {}))}".strip()
                for kind, media in content.items()
            )
            lines.append(f"| {status} | {_cell(response.get('description', ''))} | {kinds} |")
        lines.append("")
    return lines


def _schema_section(name: str, schema: Mapping[str, Any]) -> list[str]:
    lines = [f"### {name} {{#{_anchor('schema', name)}}}", ""]
    if schema.get("description"):
        lines += [_text(schema["description"]), ""]
    properties = schema.get("properties")
    if properties:
        required = set(schema.get("required", []))
        lines += ["| field | type | required | description |", "|---|---|---|---|"]
        for field, spec in properties.items():
            lines.append(
                f"| `{field}` | {_type(spec)} | {'yes' if field in required else 'no'} | "
                f"{_cell(spec.get('description', ''))} |"
            )
        lines.append("")
    elif "enum" in schema or "type" in schema or "anyOf" in schema or "oneOf" in schema:
        lines += [f"Type: {_type(schema)}", ""]
    return lines


def _type(schema: Mapping[str, Any]) -> str:
    """A schema in a few words; references link to their section on the page."""
    if not schema:
        return "any"
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if ref.startswith(SCHEMA_REF):
            name = ref[len(SCHEMA_REF) :]
            return f"[{name}](#{_anchor('schema', name)})"
        return f"`{_last(ref)}`"
    for combiner in ("anyOf", "oneOf", "allOf"):
        if combiner in schema:
            joiner = " and " if combiner == "allOf" else " or "
            return joiner.join(_type(part) for part in schema[combiner])
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(_type({**schema, "type": k}) for k in kind)
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), Mapping):
        return f"object of {_type(schema['additionalProperties'])}"
    described = str(kind or "any")
    if "format" in schema:
        described += f" ({schema['format']})"
    return described


def _summary(operation: Mapping[str, Any]) -> str:
    return str(operation.get("summary") or "")


def _operation_anchor(method: str, path: str) -> str:
    return _anchor("op", f"{method}-{path}")


def _anchor(kind: str, name: str) -> str:
    return f"{kind}-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "root")


def _last(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _cell(text: Any) -> str:
    """Text for one table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _text(text: Any) -> str:
    return str(text).strip()
