"""CloudEvent subjects: the entity an event is about, built and parsed only here.

A subject is a wire format: the outbox numbers events per subject (`sequence`),
consumers order by it and subscribers filter on its prefix. Every subject names a
model of a team, so `models/<team>/<model>/` prefixes all of one model's events:

- `models/<team>/<model>/versions/<n>`: a model version (registered, image built, scanned)
- `models/<team>/<model>/aliases/<alias>`: an alias of a model (changed)
- `models/<team>/<model>/ci-runs`: a model's CI runs (completed)

Team, model and alias are DNS labels and `n` a version number, as in the payloads
(`mlplane_contracts.types`), so a subject splits on `/` without ambiguity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

from mlplane_contracts.types import DNS_LABEL_PATTERN, MAX_INT32

MAX_DNS_LABEL = 63
_DNS_LABEL = re.compile(DNS_LABEL_PATTERN)
# No sign, no leading zero: one number has one spelling, so parse and build round-trip.
_VERSION = re.compile(r"[1-9][0-9]{0,9}")


@dataclass(frozen=True, slots=True)
class VersionSubject:
    """`models/<team>/<model>/versions/<version>`."""

    team: str
    model: str
    version: int

    def __str__(self) -> str:
        return version_subject(self.team, self.model, self.version)


@dataclass(frozen=True, slots=True)
class AliasSubject:
    """`models/<team>/<model>/aliases/<alias>`."""

    team: str
    model: str
    alias: str

    def __str__(self) -> str:
        return alias_subject(self.team, self.model, self.alias)


@dataclass(frozen=True, slots=True)
class CiRunsSubject:
    """`models/<team>/<model>/ci-runs`."""

    team: str
    model: str

    def __str__(self) -> str:
        return ci_runs_subject(self.team, self.model)


Subject = VersionSubject | AliasSubject | CiRunsSubject
_S = TypeVar("_S", VersionSubject, AliasSubject, CiRunsSubject)


def version_subject(team: str, model: str, version: int) -> str:
    """The subject of a model version's events: `models/<team>/<model>/versions/<n>`.

    Raises ValueError when team or model is not a DNS label or version not in 1..2^31-1.
    """
    return f"{_model_prefix(team, model)}/versions/{_checked_version(version)}"


def alias_subject(team: str, model: str, alias: str) -> str:
    """The subject of an alias's events: `models/<team>/<model>/aliases/<alias>`.

    Raises ValueError when team, model or alias is not a DNS label.
    """
    return f"{_model_prefix(team, model)}/aliases/{_checked_label('alias', alias)}"


def ci_runs_subject(team: str, model: str) -> str:
    """The subject of a model's CI runs, ordered per model: `models/<team>/<model>/ci-runs`.

    Raises ValueError when team or model is not a DNS label.
    """
    return f"{_model_prefix(team, model)}/ci-runs"


def parse_subject(subject: str) -> Subject:
    """The entity `subject` names.

    Raises ValueError when `subject` is none of the formats above, or a part of it is
    not a DNS label or a version number.
    """
    parts = subject.split("/")
    if len(parts) < 4 or parts[0] != "models":
        raise ValueError(f"not an mlplane subject (models/<team>/<model>/...): {subject!r}")
    team = _checked_label("team", parts[1])
    model = _checked_label("model", parts[2])
    match parts[3:]:
        case ["versions", number]:
            return VersionSubject(team, model, _parsed_version(number))
        case ["aliases", alias]:
            return AliasSubject(team, model, _checked_label("alias", alias))
        case ["ci-runs"]:
            return CiRunsSubject(team, model)
    raise ValueError(
        f"unknown subject {subject!r}: expected models/<team>/<model>/ followed by "
        "versions/<n>, aliases/<alias> or ci-runs"
    )


def parse_version_subject(subject: str) -> VersionSubject:
    """The version `models/<team>/<model>/versions/<n>` names; ValueError otherwise."""
    return _parsed_as(subject, VersionSubject)


def parse_alias_subject(subject: str) -> AliasSubject:
    """The alias `models/<team>/<model>/aliases/<alias>` names; ValueError otherwise."""
    return _parsed_as(subject, AliasSubject)


def parse_ci_runs_subject(subject: str) -> CiRunsSubject:
    """The model whose CI runs `models/<team>/<model>/ci-runs` names; ValueError otherwise."""
    return _parsed_as(subject, CiRunsSubject)


def _parsed_as(subject: str, kind: type[_S]) -> _S:
    parsed = parse_subject(subject)
    if not isinstance(parsed, kind):
        raise ValueError(f"{subject!r} is not a {kind.__doc__}")
    return parsed


def _model_prefix(team: str, model: str) -> str:
    return f"models/{_checked_label('team', team)}/{_checked_label('model', model)}"


def _checked_label(what: str, value: str) -> str:
    if len(value) > MAX_DNS_LABEL or _DNS_LABEL.fullmatch(value) is None:
        raise ValueError(f"{what} in a subject must be a DNS label, got {value!r}")
    return value


def _checked_version(version: int) -> int:
    # bool is an int; True would format as "True".
    if isinstance(version, bool) or not 1 <= version <= MAX_INT32:
        raise ValueError(f"version in a subject must be in 1..{MAX_INT32}, got {version!r}")
    return version


def _parsed_version(text: str) -> int:
    if _VERSION.fullmatch(text) is None:
        raise ValueError(f"version in a subject must be a number from 1, got {text!r}")
    return _checked_version(int(text))
