"""Field types shared by the event payloads: every constraint lives here, once.

Each is an `Annotated` alias, so a payload field's type says what it holds
(`Digest`, `DnsLabel`) and the JSON Schema carries the same constraint. Patterns
are anchored with `^...$` because pydantic matches them with Rust's `regex`,
which searches rather than matches, and has no `\\Z`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from annotated_types import Ge, Le
from pydantic import AfterValidator, AllowInfNan, AwareDatetime, StringConstraints

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SHA256_HEX_PATTERN = r"^[0-9a-f]{64}$"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
GIT_COMMIT_PATTERN = r"^([0-9a-f]{40}|[0-9a-f]{64})$"
# OCI distribution repository name, optionally prefixed by a registry host[:port].
IMAGE_REPOSITORY_PATTERN = (
    r"^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(:[0-9]{1,5})?/)?"
    r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$"
)
RESOURCE_URI_PATTERN = r"^[a-z][a-z0-9+.-]*://[!-~]+$"
WEB_URL_PATTERN = r"^https?://[!-~]+$"
METRIC_KEY_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$"
MEDIA_TYPE_PATTERN = r"^[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*$"

# C0 controls and DEL. PostgreSQL refuses NUL in text; none of them belongs in a name.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
# Free text (descriptions, messages) may break lines and indent.
_FREE_TEXT_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

MAX_INT32 = 2**31 - 1
MAX_INT63 = 2**63 - 1


def _to_utc(moment: datetime) -> datetime:
    # One zone on the wire: every offset is representable in RFC 3339, and two
    # events at the same instant compare and serialize identically.
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"timestamp out of range in UTC: {exc}") from exc


def _no_control_character(text: str) -> str:
    found = _CONTROL_CHARACTER.search(text)
    if found is not None:
        raise ValueError(f"must not contain control characters (found U+{ord(found[0]):04X})")
    return text


def _no_control_character_but_whitespace(text: str) -> str:
    found = _FREE_TEXT_CONTROL_CHARACTER.search(text)
    if found is not None:
        raise ValueError(
            "must not contain control characters other than tab, line feed and carriage "
            f"return (found U+{ord(found[0]):04X})"
        )
    return text


NoControlCharacters = AfterValidator(_no_control_character)
"""Refuses control characters; put it after a length constraint:
`Annotated[str, StringConstraints(max_length=250), NoControlCharacters]`."""

NoControlCharactersButWhitespace = AfterValidator(_no_control_character_but_whitespace)
"""Refuses control characters other than tab, line feed and carriage return."""

PlainText = Annotated[str, NoControlCharacters]
"""A string without control characters (U+0000-U+001F, U+007F): names, keys, filters.
Bound its length on the field: `name: PlainText = Field(max_length=256)`."""

FreeText = Annotated[str, NoControlCharactersButWhitespace]
"""Text for people (descriptions, messages): no control characters but tab, LF and CR.
Bound its length on the field."""

DnsLabel = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
"""A DNS-1123 label (team, model, alias names): lowercase alphanumerics and '-'."""

Sha256Hex = Annotated[str, StringConstraints(pattern=SHA256_HEX_PATTERN)]
"""A SHA-256 as 64 lowercase hex digits (artifact checksums)."""

Digest = Annotated[str, StringConstraints(pattern=DIGEST_PATTERN)]
"""A content digest `sha256:<64 lowercase hex>` (OCI blobs and manifests, datasets)."""

GitCommitSha = Annotated[str, StringConstraints(pattern=GIT_COMMIT_PATTERN)]
"""A full git object id: 40 hex digits (SHA-1) or 64 (SHA-256 repositories)."""

ImageRepository = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=IMAGE_REPOSITORY_PATTERN)
]
"""An OCI repository, e.g. `harbor.example.com/ml/fraud` (no tag, no digest)."""

ResourceUri = Annotated[
    str, StringConstraints(min_length=1, max_length=2048, pattern=RESOURCE_URI_PATTERN)
]
"""An absolute URI of a stored object, e.g. `s3://models/fraud/7/model.onnx`."""

WebUrl = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=WEB_URL_PATTERN)]
"""An http(s) URL people open: a CI run, a git repository."""

MediaType = Annotated[str, StringConstraints(max_length=255, pattern=MEDIA_TYPE_PATTERN)]
"""A media type without parameters, e.g. `application/vnd.oci.image.layer.v1.tar+gzip`."""

MetricKey = Annotated[str, StringConstraints(max_length=250, pattern=METRIC_KEY_PATTERN)]
"""A parameter, metric or tag name as CI tools log them (`learning_rate`, `val/auc`)."""

ParamValue = Annotated[str, StringConstraints(max_length=6000)]
"""A training parameter, as a string the way MLflow records them."""

Text = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
"""A non-empty free-text message or reason for people."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""A non-empty identifier that is not a DNS label: a feature, a CI run id, a tool version."""

Principal = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""Who acted: `user:<email>`, `apikey:<name>`, `service:<name>`."""

VersionNumber = Annotated[int, Ge(1), Le(MAX_INT32)]
"""A model version number, counted from 1 per model."""

Count = Annotated[int, Ge(0), Le(MAX_INT32)]
"""A non-negative count."""

ByteSize = Annotated[int, Ge(0), Le(MAX_INT63)]
"""A size in bytes."""

Metric = Annotated[float, AllowInfNan(False)]
"""A finite number (JSON has no NaN or infinity)."""

SampleText = Annotated[str, StringConstraints(max_length=1024)]
"""A categorical value of a prediction sample (a category, a label)."""

FeatureValue = bool | Metric | SampleText | None
"""One value of a prediction sample: a number, a category, a flag, or None (missing)."""

Score = Annotated[float, Ge(0), AllowInfNan(False)]
"""A finite, non-negative test statistic or distance."""

Share = Annotated[float, Ge(0), Le(1), AllowInfNan(False)]
"""A fraction between 0 and 1 inclusive."""

Percent = Annotated[int, Ge(0), Le(100)]
"""A whole percentage, e.g. a canary's traffic weight."""

Timestamp = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware instant, normalized to UTC."""

DeploymentId = UUID
"""The id the gateway gives a deployment request; every status change carries it."""
