"""Trivy's JSON report (schema v2) read into normalised findings.

Only `SchemaVersion: 2` is accepted: another version may move fields, and a
report read wrongly would pass an image it should not. Inside a v2 report any
key may be absent or null (Trivy omits empty lists), so every read has a default.
Misconfiguration checks that passed are not findings; only `Status: FAIL` is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mlplane_contracts.events import Severity

from ..domain.findings import Finding, FindingKind
from .errors import TrivyReportInvalid

SUPPORTED_SCHEMA_VERSION = 2

_SEVERITIES = {severity.value: severity for severity in Severity}


@dataclass(frozen=True, slots=True)
class TrivyReport:
    """What the adapter keeps of one report: who made it, what it scanned, what it found."""

    trivy_version: str | None
    artifact_name: str | None
    artifact_type: str | None
    repo_digests: tuple[str, ...]
    findings: tuple[Finding, ...]


def _severity(value: Any) -> Severity:
    return _SEVERITIES.get(str(value or "").lower(), Severity.UNKNOWN)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dicts(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, Mapping))


def _layer(item: Mapping[str, Any]) -> str | None:
    layer = item.get("Layer")
    if not isinstance(layer, Mapping):
        return None
    # The layer digest is what a registry and the manifest name; the diff id is a fallback.
    return _text(layer.get("Digest")) or _text(layer.get("DiffID"))


def _vulnerabilities(target: str, result: Mapping[str, Any]) -> Iterator[Finding]:
    for item in _dicts(result.get("Vulnerabilities")):
        vulnerability_id = _text(item.get("VulnerabilityID"))
        if vulnerability_id is None:
            continue
        yield Finding(
            kind=FindingKind.VULNERABILITY,
            id=vulnerability_id,
            severity=_severity(item.get("Severity")),
            title=_text(item.get("Title")) or vulnerability_id,
            target=target,
            package=_text(item.get("PkgName")),
            installed_version=_text(item.get("InstalledVersion")),
            fixed_version=_text(item.get("FixedVersion")),
            layer=_layer(item),
        )


def _secrets(target: str, result: Mapping[str, Any]) -> Iterator[Finding]:
    for item in _dicts(result.get("Secrets")):
        rule_id = _text(item.get("RuleID"))
        if rule_id is None:
            continue
        title = _text(item.get("Title")) or rule_id
        line = item.get("StartLine")
        yield Finding(
            kind=FindingKind.SECRET,
            id=rule_id,
            severity=_severity(item.get("Severity")),
            title=f"{title} (line {line})" if isinstance(line, int) and line > 0 else title,
            target=target,
            layer=_layer(item),
        )


def _misconfigurations(target: str, result: Mapping[str, Any]) -> Iterator[Finding]:
    for item in _dicts(result.get("Misconfigurations")):
        if item.get("Status") != "FAIL":
            continue
        check_id = _text(item.get("ID")) or _text(item.get("AVDID"))
        if check_id is None:
            continue
        title = _text(item.get("Title")) or check_id
        message = _text(item.get("Message"))
        yield Finding(
            kind=FindingKind.MISCONFIGURATION,
            id=check_id,
            severity=_severity(item.get("Severity")),
            # The message names the resource and container; the title alone does not.
            title=f"{title}: {message}" if message and message != title else title,
            target=target,
            layer=_layer(item),
        )


def _licenses(target: str, result: Mapping[str, Any]) -> Iterator[Finding]:
    for item in _dicts(result.get("Licenses")):
        name = _text(item.get("Name"))
        if name is None:
            continue
        category = _text(item.get("Category")) or "unknown"
        yield Finding(
            kind=FindingKind.LICENSE,
            id=name,
            severity=_severity(item.get("Severity")),
            title=f"{name} license ({category})",
            target=_text(item.get("FilePath")) or target,
            package=_text(item.get("PkgName")),
            layer=_layer(item),
        )


def findings_of(document: Mapping[str, Any]) -> list[Finding]:
    """Every finding of a parsed v2 report, result by result, in Trivy's order."""
    findings: list[Finding] = []
    for result in _dicts(document.get("Results")):
        target = _text(result.get("Target")) or "unknown"
        findings.extend(_vulnerabilities(target, result))
        findings.extend(_secrets(target, result))
        findings.extend(_misconfigurations(target, result))
        findings.extend(_licenses(target, result))
    return findings


def parse_report(raw: bytes | str, *, target: str) -> TrivyReport:
    """Read Trivy's JSON report about `target` (named in errors).

    Raises TrivyReportInvalid when `raw` is not a JSON object or its
    SchemaVersion is not 2.
    """
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise TrivyReportInvalid(
            f"trivy's report on {target} is not JSON: {error}", target=target
        ) from None
    if not isinstance(document, dict):
        raise TrivyReportInvalid(f"trivy's report on {target} is not a JSON object", target=target)
    schema = document.get("SchemaVersion")
    if schema != SUPPORTED_SCHEMA_VERSION:
        raise TrivyReportInvalid(
            f"trivy's report on {target} has SchemaVersion {schema!r}; "
            f"this scanner reads only {SUPPORTED_SCHEMA_VERSION}",
            target=target,
        )
    trivy = document.get("Trivy")
    metadata = document.get("Metadata")
    digests = metadata.get("RepoDigests") if isinstance(metadata, Mapping) else None
    return TrivyReport(
        trivy_version=_text(trivy.get("Version")) if isinstance(trivy, Mapping) else None,
        artifact_name=_text(document.get("ArtifactName")),
        artifact_type=_text(document.get("ArtifactType")),
        repo_digests=tuple(d for d in digests if isinstance(d, str))
        if isinstance(digests, list)
        else (),
        findings=tuple(findings_of(document)),
    )
