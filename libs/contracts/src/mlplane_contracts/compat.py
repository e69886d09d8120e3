"""Breaking changes between two releases of the published contracts (pure: documents in,
findings out).

An event type, once released, keeps its contract: a consumer written against
`io.mlplane.x.v1` must go on accepting every `x.v1` a newer producer emits, and a
producer's `x.v1` must go on meeting what older consumers check. So between a released
schema and the current one of the same type, only two kinds of change are allowed:

- an added optional property (a property the old schema did not have, not required);
- changed annotations: `title`, `description`, `examples`, `$comment`.

Everything else is breaking and needs a new type (`.v2`) beside the old one: a removed
property, a new required property (or an optional one made required, or a required one
made optional), a changed `type`, an enum value added or removed, a changed `const`,
`format`, `pattern`, length, range or item constraint, a changed `additionalProperties`,
an `anyOf`/`oneOf`/`allOf` with other branches, a type whose schema file or AsyncAPI
message is gone. New types are always fine.

An added optional property is allowed, but not free: the payload models forbid unknown
fields (`additionalProperties: false`), so a consumer still running the older model
refuses an event that carries it. Roll such a change out consumers first, producers
last.

Schemas are compared structurally: `$ref`s (`#/$defs/...` in a payload schema,
`#/components/schemas/...` in the AsyncAPI document) are followed on both sides, so
renaming a definition is not a change, while changing what it holds is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

ANNOTATIONS = frozenset({"title", "description", "examples", "$comment"})
"""Keywords whose change never breaks anyone: they say things, they check nothing."""
ASYNCAPI_FILE = "asyncapi.json"
RELEASE_DIRECTORY = re.compile(r"v(\d+)")
_ABSENT: Any = object()
"""A keyword the schema does not have (unlike one set to null)."""
_STRUCTURAL = frozenset(
    {"$ref", "$defs", "properties", "required", "type", "enum", "additionalProperties"}
    | {"anyOf", "oneOf", "allOf", "items", "prefixItems"}
    | {"patternProperties", "dependentSchemas", *{"propertyNames", "contains", "not"}}
    | {"if", "then", "else", "unevaluatedProperties", "unevaluatedItems"}
)
_SCHEMA_VALUED = ("propertyNames", "contains", "not", "if", "then", "else")
_SCHEMA_MAPS = ("patternProperties", "dependentSchemas")
_FLAG_OR_SCHEMA = ("additionalProperties", "unevaluatedProperties", "unevaluatedItems")


class Rule(StrEnum):
    """Why a change breaks the contract."""

    TYPE_REMOVED = "type_removed"
    PROPERTY_REMOVED = "property_removed"
    REQUIRED_ADDED = "required_added"
    REQUIRED_REMOVED = "required_removed"
    TYPE_CHANGED = "type_changed"
    ENUM_CHANGED = "enum_changed"
    CONSTRAINT_CHANGED = "constraint_changed"
    ADDITIONAL_PROPERTIES_CHANGED = "additional_properties_changed"
    COMPOSITION_CHANGED = "composition_changed"
    MESSAGE_CHANGED = "message_changed"


@dataclass(frozen=True, slots=True)
class Breaking:
    """One breaking change: where (`<type or file>: <path>`), which rule, what changed."""

    where: str
    rule: Rule
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.rule.value}: {self.detail}"


def check_schema(
    released: Mapping[str, Any], current: Mapping[str, Any], name: str
) -> list[Breaking]:
    """The breaking changes from the `released` JSON Schema to the `current` one of the
    same type (`name` prefixes each finding's location); [] when compatible."""
    return _Comparison(released, current, name).compare(released, current, "")


def check_asyncapi(released: Mapping[str, Any], current: Mapping[str, Any]) -> list[Breaking]:
    """The breaking changes between two AsyncAPI documents of the bus; [] when compatible.

    Per released message (by its `messageType`): it must still be there, with the same
    content type, and its payload and headers schemas compatible; per released channel
    of an event type (its address is the routing key), it must still be there and still
    carry that type. The queues' bindings are topology, not contract: a service that
    stops consuming a type breaks no producer.
    """
    findings: list[Breaking] = []
    comparison = _Comparison(released, current, ASYNCAPI_FILE)
    old_messages = _messages_by_type(released)
    new_messages = _messages_by_type(current)
    for event_type, (old_name, old) in sorted(old_messages.items()):
        where = f"{ASYNCAPI_FILE}: components.messages.{old_name}"
        if event_type not in new_messages:
            findings.append(
                Breaking(where, Rule.TYPE_REMOVED, f"{event_type} is no longer a message")
            )
            continue
        _, new = new_messages[event_type]
        if old.get("contentType") != new.get("contentType"):
            findings.append(
                Breaking(
                    where,
                    Rule.MESSAGE_CHANGED,
                    f"contentType {old.get('contentType')!r} -> {new.get('contentType')!r}",
                )
            )
        for part in ("payload", "headers"):
            old_part, new_part = old.get(part), new.get(part)
            if old_part is None:
                continue
            if new_part is None:
                findings.append(Breaking(where, Rule.MESSAGE_CHANGED, f"its {part} is gone"))
                continue
            findings.extend(
                comparison.compare(old_part, new_part, f"components.messages.{old_name}.{part}")
            )
    new_addresses = {channel.get("address"): channel for channel in _channels(current).values()}
    for name, channel in sorted(_channels(released).items()):
        address = channel.get("address")
        if address not in old_messages:
            continue  # a queue, not an event type's channel
        if address not in new_addresses:
            findings.append(
                Breaking(
                    f"{ASYNCAPI_FILE}: channels.{name}",
                    Rule.TYPE_REMOVED,
                    f"no channel for {address} any more",
                )
            )
    return findings


def check_directories(released: Path, current: Path) -> list[Breaking]:
    """Every breaking change from the contract files in `released` to those in `current`:
    each released `<type>.json` against the current file of that name, and the AsyncAPI
    documents. A released file that is gone is a removed type."""
    findings: list[Breaking] = []
    for old_file in sorted(released.glob("*.json")):
        new_file = current / old_file.name
        if not new_file.is_file():
            findings.append(Breaking(old_file.name, Rule.TYPE_REMOVED, "the released file is gone"))
            continue
        old, new = _read(old_file), _read(new_file)
        if old_file.name == ASYNCAPI_FILE:
            findings.extend(check_asyncapi(old, new))
        else:
            findings.extend(check_schema(old, new, old_file.name.removesuffix(".json")))
    return findings


def latest_release(root: Path) -> Path:
    """The newest release under `root` (`v<N>` directories, highest N).

    Raises FileNotFoundError when `root` holds none.
    """
    releases: list[tuple[int, Path]] = []
    if root.is_dir():
        for path in root.iterdir():
            match = RELEASE_DIRECTORY.fullmatch(path.name)
            if match is not None and path.is_dir():
                releases.append((int(match.group(1)), path))
    if not releases:
        raise FileNotFoundError(f"no released contracts (v<N> directories) under {root}")
    return max(releases)[1]


# -- comparison -------------------------------------------------------------------------


class _Comparison:
    """Compares two schema trees whose `$ref`s resolve in `old_root` / `new_root`."""

    def __init__(self, old_root: Mapping[str, Any], new_root: Mapping[str, Any], name: str) -> None:
        self._old_root = old_root
        self._new_root = new_root
        self._name = name
        self._visiting: set[tuple[str, str]] = set()

    def compare(self, old: Any, new: Any, path: str) -> list[Breaking]:
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            # A boolean schema (true/false) or something that is not a schema at all.
            if old != new:
                return [self._at(path, Rule.CONSTRAINT_CHANGED, f"{_show(old)} -> {_show(new)}")]
            return []
        references = (str(old.get("$ref", "")), str(new.get("$ref", "")))
        if any(references):
            if references in self._visiting:
                return []  # a recursive definition, already being compared
            self._visiting.add(references)
            try:
                return self.compare(
                    _resolved(old, self._old_root), _resolved(new, self._new_root), path
                )
            finally:
                self._visiting.discard(references)
        findings: list[Breaking] = []
        findings += self._types(old, new, path)
        findings += self._properties(old, new, path)
        for keyword in _FLAG_OR_SCHEMA:
            findings += self._flag_or_schema(keyword, old, new, path)
        findings += self._subschemas(old, new, path)
        findings += self._enum(old, new, path)
        findings += self._compositions(old, new, path)
        findings += self._items(old, new, path)
        for keyword in sorted((set(old) | set(new)) - ANNOTATIONS - _STRUCTURAL):
            before, after = old.get(keyword, _ABSENT), new.get(keyword, _ABSENT)
            if before != after:
                detail = f"{keyword} {_show(before)} -> {_show(after)}"
                findings.append(self._at(path, Rule.CONSTRAINT_CHANGED, detail))
        return findings

    def _at(self, path: str, rule: Rule, detail: str) -> Breaking:
        return Breaking(f"{self._name}: {path or '(root)'}", rule, detail)

    def _types(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> list[Breaking]:
        before, after = _type_set(old.get("type")), _type_set(new.get("type"))
        if before != after:
            shown = f"{sorted(before) or 'any'} -> {sorted(after) or 'any'}"
            return [self._at(path, Rule.TYPE_CHANGED, shown)]
        return []

    def _properties(
        self, old: Mapping[str, Any], new: Mapping[str, Any], path: str
    ) -> list[Breaking]:
        findings: list[Breaking] = []
        old_properties: Mapping[str, Any] = old.get("properties", {})
        new_properties: Mapping[str, Any] = new.get("properties", {})
        old_required = set(old.get("required", ()))
        new_required = set(new.get("required", ()))
        for name in sorted(old_properties):
            where = _join(path, name)
            if name not in new_properties:
                findings.append(self._at(where, Rule.PROPERTY_REMOVED, "the property is gone"))
                continue
            findings.extend(self.compare(old_properties[name], new_properties[name], where))
        for name in sorted(new_required - old_required):
            what = "an existing optional property" if name in old_properties else "a new property"
            findings.append(self._at(_join(path, name), Rule.REQUIRED_ADDED, f"{what} is required"))
        for name in sorted(old_required - new_required):
            if name in new_properties:  # a removed property is reported once, above
                findings.append(
                    self._at(_join(path, name), Rule.REQUIRED_REMOVED, "no longer required")
                )
        return findings

    def _flag_or_schema(
        self, keyword: str, old: Mapping[str, Any], new: Mapping[str, Any], path: str
    ) -> list[Breaking]:
        """`additionalProperties` and its kin: true, false, absent or a schema."""
        before, after = old.get(keyword, _ABSENT), new.get(keyword, _ABSENT)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            return self.compare(before, after, _join(path, f"({keyword})"))
        if before != after:
            rule = (
                Rule.ADDITIONAL_PROPERTIES_CHANGED
                if keyword == "additionalProperties"
                else Rule.CONSTRAINT_CHANGED
            )
            return [self._at(path, rule, f"{keyword} {_show(before)} -> {_show(after)}")]
        return []

    def _subschemas(
        self, old: Mapping[str, Any], new: Mapping[str, Any], path: str
    ) -> list[Breaking]:
        """Keywords holding a schema, or a map of named schemas (patterns, names)."""
        findings: list[Breaking] = []
        for keyword in _SCHEMA_VALUED:
            if keyword in old and keyword in new:
                findings += self.compare(old[keyword], new[keyword], _join(path, f"({keyword})"))
            elif keyword in old or keyword in new:
                findings.append(self._at(path, Rule.CONSTRAINT_CHANGED, _change(keyword, old, new)))
        for keyword in _SCHEMA_MAPS:
            before: Mapping[str, Any] = old.get(keyword, {})
            after: Mapping[str, Any] = new.get(keyword, {})
            for key in sorted(set(before) | set(after)):
                where = _join(path, f"({keyword} {key})")
                if key in before and key in after:
                    findings += self.compare(before[key], after[key], where)
                else:
                    what = "added" if key in after else "removed"
                    findings.append(self._at(where, Rule.CONSTRAINT_CHANGED, f"{keyword} {what}"))
        return findings

    def _enum(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> list[Breaking]:
        if "enum" not in old and "enum" not in new:
            return []
        before = {_canonical(v) for v in old.get("enum", ())}
        after = {_canonical(v) for v in new.get("enum", ())}
        if "enum" in old and "enum" in new and before == after:
            return []
        added, removed = sorted(after - before), sorted(before - after)
        detail = f"added {added}, removed {removed}"
        if "enum" not in old or "enum" not in new:
            detail = f"enum {'added' if 'enum' in new else 'removed'} ({detail})"
        return [self._at(path, Rule.ENUM_CHANGED, detail)]

    def _compositions(
        self, old: Mapping[str, Any], new: Mapping[str, Any], path: str
    ) -> list[Breaking]:
        findings: list[Breaking] = []
        for keyword in ("anyOf", "oneOf", "allOf", "prefixItems"):
            before: Sequence[Any] = old.get(keyword, ())
            after: Sequence[Any] = new.get(keyword, ())
            if len(before) != len(after):
                findings.append(
                    self._at(
                        path,
                        Rule.COMPOSITION_CHANGED,
                        f"{keyword} has {len(after)} branches, had {len(before)}",
                    )
                )
                continue
            for index, (a, b) in enumerate(zip(before, after, strict=True)):
                findings.extend(self.compare(a, b, _join(path, f"({keyword}[{index}])")))
        return findings

    def _items(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> list[Breaking]:
        if "items" not in old and "items" not in new:
            return []
        if "items" not in old or "items" not in new:
            detail = (
                f"items {_show(old.get('items', _ABSENT))} -> {_show(new.get('items', _ABSENT))}"
            )
            return [self._at(path, Rule.CONSTRAINT_CHANGED, detail)]
        return self.compare(old["items"], new["items"], _join(path, "[]"))


def _messages_by_type(document: Mapping[str, Any]) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """Event type -> (component name, message) of the document's messages."""
    messages: Mapping[str, Any] = document.get("components", {}).get("messages", {})
    found: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for name, message in messages.items():
        event_type = message.get("bindings", {}).get("amqp", {}).get("messageType", name)
        found[str(event_type)] = (name, message)
    return found


def _channels(document: Mapping[str, Any]) -> Mapping[str, Any]:
    channels: Mapping[str, Any] = document.get("channels", {})
    return channels


def _resolved(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """`node` with its local `$ref` replaced by what it points at (siblings kept)."""
    reference = node.get("$ref")
    if reference is None:
        return node
    if not isinstance(reference, str) or not reference.startswith("#"):
        raise ValueError(f"only local references are supported, got {reference!r}")
    target: Any = root
    for part in [p for p in reference[1:].split("/") if p]:
        key = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, Mapping) or key not in target:
            raise ValueError(f"reference {reference} does not resolve")
        target = target[key]
    if not isinstance(target, Mapping):
        raise ValueError(f"reference {reference} is not a schema")
    siblings = {k: v for k, v in node.items() if k != "$ref"}
    return {**target, **siblings}


def _type_set(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset({value})
    return frozenset(str(v) for v in value)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _change(keyword: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """`<keyword> <old value> -> <new value>`, for a finding's detail."""
    before, after = old.get(keyword, _ABSENT), new.get(keyword, _ABSENT)
    return f"{keyword} {_show(before)} -> {_show(after)}"


def _show(value: Any) -> str:
    return "(absent)" if value is _ABSENT else json.dumps(value, sort_keys=True)[:200]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _read(path: Path) -> Mapping[str, Any]:
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a JSON object")
    return document
