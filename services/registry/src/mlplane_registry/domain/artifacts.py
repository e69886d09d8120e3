"""Which artifact a version may point at: the rule that keeps artifacts in their team's space.

A version's artifact is either an object the registry verified itself (an upload
to its own store, completed with the declared size and sha256 checked, for the
same team and model), or an `s3://` object under a location configured for the
team, or an artifact of the MLflow tracking server the registry is configured with
under a `mlflow-artifacts:/` location configured for the team. Nothing else: no
`file://`, no plain path, no other bucket. The rule runs
before anything is read, so refusing a URI says nothing about the object behind it.
No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mlplane_runtime.errors import PROBLEM_BASE_URI, InvalidInput

from mlplane_registry.domain.entities import Artifact
from mlplane_registry.domain.errors import DNS_LABEL, MAX_DNS_LABEL

TEAM_LOCATIONS_SETTING = "MLPLANE_REGISTRY_TEAM_ARTIFACT_LOCATIONS"
# S3's bucket naming rule (lowercase, digits, '.', '-'; 3 to 63 characters).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# What a key segment may hold: no '%' (percent-encoding could hide a '..'), no '\'.
_SEGMENT = re.compile(r"[A-Za-z0-9._=+@,!*'()~ -]+")


class ArtifactRefused(InvalidInput):
    """An artifact URI outside the team's space; says nothing about the object it names."""

    problem_type = f"{PROBLEM_BASE_URI}/artifact-refused"
    title = "Artifact refused"


@dataclass(frozen=True, slots=True)
class VerifiedArtifact:
    """An upload the registry completed and checked (size and sha256) for a team's model."""

    team: str
    model: str
    uri: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class S3Location:
    """`s3://<bucket>/<prefix>`: the objects of `bucket` whose key starts with `prefix`."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, text: str) -> S3Location:
        """Raises ValueError unless `text` is `s3://<bucket>/` or `s3://<bucket>/<prefix>/`."""
        found = _split_s3(text)
        if found is None or not (found[1] == "" or found[1].endswith("/")):
            raise ValueError(
                f"artifact location {text!r} must be s3://<bucket>/ or s3://<bucket>/<prefix>/ "
                "(ending with '/', no '.', '..' or empty segment, no '%', query or fragment)"
            )
        return cls(*found)

    def holds(self, uri: str) -> bool:
        found = _split_s3(uri)
        if found is None:
            return False
        bucket, key = found
        return bucket == self.bucket and key.startswith(self.prefix) and len(key) > len(self.prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True, slots=True)
class TrackingLocation:
    """`mlflow-artifacts:/<prefix>`: artifacts of the MLflow tracking server the registry
    is configured with, whose path starts with `prefix` (`mlflow-artifacts:/` for all)."""

    prefix: str

    SCHEME = "mlflow-artifacts:/"

    @classmethod
    def parse(cls, text: str) -> TrackingLocation:
        """Raises ValueError unless `text` is `mlflow-artifacts:/` or `.../<prefix>/`."""
        rest = text.removeprefix(cls.SCHEME)
        segments = rest.split("/")[:-1]
        if (
            not text.startswith(cls.SCHEME)
            or rest.startswith("/")
            or not (rest == "" or rest.endswith("/"))
            or any(s in ("", ".", "..") or _SEGMENT.fullmatch(s) is None for s in segments)
        ):
            raise ValueError(
                f"artifact location {text!r} must be {cls.SCHEME} or {cls.SCHEME}<prefix>/ "
                "(ending with '/', no '.', '..' or empty segment)"
            )
        return cls(rest)

    def holds(self, uri: str) -> bool:
        if not uri.startswith(self.SCHEME):
            return False
        path = uri.removeprefix(self.SCHEME).strip("/")
        segments = path.split("/")
        if any(s in ("", ".", "..") or _SEGMENT.fullmatch(s) is None for s in segments):
            return False
        return path.startswith(self.prefix) and len(path) > len(self.prefix)

    def __str__(self) -> str:
        return f"{self.SCHEME}{self.prefix}"


Location = S3Location | TrackingLocation


def parse_location(text: str) -> Location:
    """An `s3://` or `mlflow-artifacts:/` location. Raises ValueError saying what is accepted."""
    if text.startswith(TrackingLocation.SCHEME):
        return TrackingLocation.parse(text)
    return S3Location.parse(text)


@dataclass(frozen=True, slots=True)
class TeamArtifactLocations:
    """Where each team's artifacts may lie besides the registry's own store."""

    by_team: Mapping[str, tuple[Location, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, mapping: Mapping[str, Sequence[str]]) -> TeamArtifactLocations:
        """Raises ValueError naming a team that is not a DNS label or a bad location."""
        by_team: dict[str, tuple[Location, ...]] = {}
        for team, locations in mapping.items():
            if len(team) > MAX_DNS_LABEL or DNS_LABEL.fullmatch(team) is None:
                raise ValueError(f"team {team!r} is not a DNS-1123 label")
            by_team[team] = tuple(parse_location(text) for text in locations)
        return cls(by_team)

    def allows(self, team: str, uri: str) -> bool:
        """Whether `uri` is an object under one of `team`'s configured locations."""
        return any(location.holds(uri) for location in self.by_team.get(team, ()))


def check_artifact(
    team: str,
    model: str,
    artifact: Artifact,
    verified: VerifiedArtifact | None,
    locations: TeamArtifactLocations,
) -> None:
    """Accept `artifact` for a version of `team`'s `model`, or raise `ArtifactRefused`.

    `verified` is the registry's record of an upload to `artifact.uri` for this team
    and model (None when there is none). The refusal is the same whatever exists
    behind the URI: it names only what the caller sent and what they may use instead.
    """
    if verified is not None:
        if (verified.team, verified.model) != (team, model):
            verified = None  # another model's upload: as if there were none
        elif (verified.size_bytes, verified.sha256) != (artifact.size_bytes, artifact.sha256):
            raise ArtifactRefused(
                f"artifact {artifact.uri} was uploaded to the registry for model {model} with "
                "another size or sha256 than declared here; declare the values its upload "
                "completed with",
                field="artifact",
            )
        else:
            return
    if locations.allows(team, artifact.uri):
        return
    raise ArtifactRefused(
        f"artifact {artifact.uri!r} is not in team {team}'s space: register an upload "
        f"completed through the registry for model {model} (POST /registry/models/{model}/"
        f"uploads, then .../complete), or an s3:// object under a location configured for "
        f"the team ({TEAM_LOCATIONS_SETTING})",
        field="artifact",
    )


def _split_s3(uri: str) -> tuple[str, str] | None:
    """(bucket, key) of a strict `s3://` URI; None for anything else or a suspicious key."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    if (
        parts.scheme != "s3"
        or not uri.startswith("s3://")
        or parts.query
        or parts.fragment
        or "?" in uri
        or "#" in uri
        or _BUCKET.fullmatch(parts.netloc) is None
    ):
        return None
    key = parts.path[1:] if parts.path.startswith("/") else None
    if key is None:
        return None
    if key == "":
        return parts.netloc, key
    segments = key.split("/")
    # A trailing '/' (a location's prefix) leaves one empty last segment.
    inner = segments[:-1] if segments[-1] == "" else segments
    if any(s in ("", ".", "..") or _SEGMENT.fullmatch(s) is None for s in inner):
        return None
    return parts.netloc, key
