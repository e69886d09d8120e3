"""Hypothesis strategies that make valid events of every registered type, for tests.

Strategies are derived from the payload models: each field's type is looked up
among the shared field types (`mlplane_contracts.types`), enums, nested models
and containers. A field whose type has no strategy here fails loudly, so a new
field type cannot slip past the property tests. Needs `hypothesis`, declared by
the `testing` extra (`mlplane-contracts[testing]`): import this module from tests
only; no service imports it at run time (tests/layout/test_imports.py).
"""

from __future__ import annotations

import types as _stdlib_types
import typing
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

from annotated_types import MinLen
from hypothesis import strategies as st
from pydantic import BaseModel

from mlplane_contracts import events as _events  # noqa: F401  (registers every type)
from mlplane_contracts.envelope import CloudEvent, EventPayload, registered_payloads
from mlplane_contracts.events import PLATFORM_PAYLOADS
from mlplane_contracts.types import (
    MAX_INT32,
    MAX_INT63,
    ByteSize,
    Count,
    Digest,
    DnsLabel,
    GitCommitSha,
    ImageRepository,
    MediaType,
    Metric,
    MetricKey,
    Name,
    ParamValue,
    Percent,
    Principal,
    ResourceUri,
    SampleText,
    Score,
    Sha256Hex,
    Share,
    Text,
    Timestamp,
    VersionNumber,
    WebUrl,
)

_M = TypeVar("_M", bound=BaseModel)
_HEX = "0123456789abcdef"
_URI_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
_REPOSITORY_PART = st.from_regex(
    r"[a-z0-9]{1,8}((\.|_|__|-{1,2})[a-z0-9]{1,8}){0,2}", fullmatch=True
)

timestamps: st.SearchStrategy[datetime] = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
)
"""Aware datetimes in several zones (the models normalize them to UTC)."""

sha256_hex = st.text(_HEX, min_size=64, max_size=64)

_FIELD_TYPES: list[tuple[object, st.SearchStrategy[Any]]] = [
    (DnsLabel, st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)),
    (Sha256Hex, sha256_hex),
    (Digest, sha256_hex.map("sha256:".__add__)),
    (
        GitCommitSha,
        st.sampled_from([40, 64]).flatmap(lambda n: st.text(_HEX, min_size=n, max_size=n)),
    ),
    (
        ImageRepository,
        st.tuples(
            st.sampled_from(["", "harbor.example.com/", "127.0.0.1:5000/", "ghcr.io/"]),
            st.lists(_REPOSITORY_PART, min_size=1, max_size=3),
        ).map(lambda parts: parts[0] + "/".join(parts[1])),
    ),
    (
        ResourceUri,
        st.tuples(st.sampled_from(["s3", "gs", "file", "https"]), _URI_TEXT).map("://".join),
    ),
    (WebUrl, st.tuples(st.sampled_from(["http", "https"]), _URI_TEXT).map("://".join)),
    (
        MediaType,
        st.from_regex(r"[a-z0-9][a-z0-9.+-]{0,15}/[a-z0-9][a-z0-9.+-]{0,30}", fullmatch=True),
    ),
    (MetricKey, st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,30}", fullmatch=True)),
    (ParamValue, st.text(max_size=40)),
    (SampleText, st.text(max_size=40)),
    (Text, st.text(min_size=1, max_size=60)),
    (Name, st.text(min_size=1, max_size=40)),
    (Principal, st.text(min_size=1, max_size=40)),
    (VersionNumber, st.integers(1, MAX_INT32)),
    (Count, st.integers(0, MAX_INT32)),
    (ByteSize, st.integers(0, MAX_INT63)),
    (Percent, st.integers(0, 100)),
    (Metric, st.floats(allow_nan=False, allow_infinity=False)),
    (Score, st.floats(min_value=0, allow_nan=False, allow_infinity=False)),
    (Share, st.floats(min_value=0, max_value=1)),
    (Timestamp, timestamps),
    (UUID, st.uuids()),
    (bool, st.booleans()),
]


def strategy_for(annotation: Any, *, min_size: int = 0) -> st.SearchStrategy[Any]:
    """Valid values of a payload field's type annotation.

    Raises TypeError for a type it does not know: add it to `_FIELD_TYPES`.
    """
    for known, strategy in _FIELD_TYPES:
        if annotation == known:
            return strategy
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (typing.Union, _stdlib_types.UnionType):
        return st.one_of([strategy_for(argument) for argument in arguments])
    if annotation is type(None):
        return st.none()
    if origin is tuple and len(arguments) == 2 and arguments[1] is Ellipsis:
        items = strategy_for(arguments[0])
        return st.lists(items, min_size=min_size, max_size=min_size + 3).map(tuple)
    if origin is dict:
        return st.dictionaries(strategy_for(arguments[0]), strategy_for(arguments[1]), max_size=3)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return st.sampled_from(list(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return models(annotation)
    raise TypeError(f"no strategy for field type {annotation!r}")


def models(model: type[_M]) -> st.SearchStrategy[_M]:
    """Valid instances of a payload model (or a part of one), every field drawn."""
    hints = typing.get_type_hints(model, include_extras=True)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, info in model.model_fields.items():
        min_size = max(
            (item.min_length for item in info.metadata if isinstance(item, MinLen)), default=0
        )
        fields[name] = strategy_for(hints[name], min_size=min_size)
    return st.builds(model, **fields)


def cloud_events(
    payloads: st.SearchStrategy[EventPayload] | None = None,
) -> st.SearchStrategy[CloudEvent]:
    """Valid events with arbitrary attributes; `payloads` defaults to every registered type."""
    if payloads is None:
        payloads = st.sampled_from(list(PLATFORM_PAYLOADS.values())).flatmap(models)
    optional_text = st.none() | st.text(min_size=1, max_size=40)
    return st.builds(
        _event,
        data=payloads,
        id=st.uuids().map(str) | st.text(min_size=1, max_size=40),
        source=st.sampled_from(["/mlplane/registry", "/mlplane/gateway"])
        | st.text(min_size=1, max_size=40),
        subject=optional_text,
        time=timestamps,
        dataschema=optional_text,
        traceparent=st.none()
        | st.from_regex(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]", fullmatch=True),
        tracestate=optional_text,
        sequence=st.none() | st.integers(0, MAX_INT63),
    )


def events_of(event_type: str) -> st.SearchStrategy[CloudEvent]:
    """Valid events of one registered type. Raises KeyError for an unknown type."""
    return cloud_events(models(registered_payloads()[event_type]))


def _event(data: EventPayload, **attributes: Any) -> CloudEvent:
    return CloudEvent(type=data.event_type, data=data, **attributes)
