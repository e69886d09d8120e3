"""Registering a version from a bare source: where its artifact is, and what it came from.

A version created through the MLflow API with only a `source` starts `pending`; the
registration worker resolves the source to a location (`parse_source`), checks the
location against the team's (`artifacts.check_location`), reads it and hashes it
(`mlplane_contracts.artifacts.tree_digest` for a directory, as MLflow logs models),
assembles the lineage from what was given and what the MLflow run says (`lineage_of`),
then marks the version `ready` or `failed`. No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from mlplane_contracts.types import WEB_URL_PATTERN
from mlplane_runtime.errors import InvalidInput

from mlplane_registry.domain.entities import Lineage

READY = "ready"
PENDING = "pending"
FAILED = "failed"

TRACKING_SCHEME = "mlflow-artifacts"
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LOGGED_MODEL_ID = re.compile(r"m-[A-Za-z0-9]{1,64}")
_SEGMENT = re.compile(r"[A-Za-z0-9._=+@,!*'()~ -]+")
# What an MLflow run's tags name (mlflow.utils.mlflow_tags).
GIT_COMMIT_RUN_TAG = "mlflow.source.git.commit"
GIT_REPO_RUN_TAG = "mlflow.source.git.repoURL"
SOURCE_NAME_RUN_TAG = "mlflow.source.name"
_WEB_URL = re.compile(WEB_URL_PATTERN.strip("^$"))
_GIT_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SCP_GIT = re.compile(r"git@([A-Za-z0-9.-]+):([A-Za-z0-9._/-]+?)(?:\.git)?")


class SourceRefused(InvalidInput):
    """A `source` mlplane cannot read from, whatever is behind it."""


@dataclass(frozen=True, slots=True)
class LocationUri:
    """A location read as it is: `s3://bucket/key`, `file://` (the registry's own local
    store) or `mlflow-artifacts:/path` (the tracking server's artifact store)."""

    uri: str


@dataclass(frozen=True, slots=True)
class RunArtifacts:
    """`runs:/<run_id>/<path>`: a path under an MLflow run's artifact root."""

    run_id: str
    path: str


@dataclass(frozen=True, slots=True)
class LoggedModel:
    """`models:/m-<id>`: an MLflow 3 logged model (its artifacts on the tracking server)."""

    model_id: str


@dataclass(frozen=True, slots=True)
class RegisteredVersion:
    """`models:/<name>/<version>` or `models:/<name>@<alias>`: a version of this registry."""

    name: str
    version: int | None = None
    alias: str | None = None


Source = LocationUri | RunArtifacts | LoggedModel | RegisteredVersion


def parse_source(text: str) -> Source:
    """What a version's `source` points at. Raises `SourceRefused` saying what is accepted."""
    if len(text) > 2048 or any(ord(c) < 0x21 and c != " " for c in text):
        raise _refused(text)
    scheme, sep, rest = text.partition(":")
    if not sep:
        raise _refused(text)
    scheme = scheme.lower()
    if scheme == "runs":
        run_id, _, path = rest.lstrip("/").partition("/")
        if _RUN_ID.fullmatch(run_id) is None or not _clean_path(path, allow_empty=True):
            raise _refused(text)
        return RunArtifacts(run_id, path.strip("/"))
    if scheme == "models":
        body = rest.lstrip("/")
        if _LOGGED_MODEL_ID.fullmatch(body):
            return LoggedModel(body)
        if "@" in body and "/" not in body:
            name, _, alias = body.partition("@")
            if name and alias:
                return RegisteredVersion(name, alias=alias)
        name, _, version = body.partition("/")
        if name and version.isascii() and version.isdigit() and 0 < int(version) < 2**31:
            return RegisteredVersion(name, version=int(version))
        raise _refused(text)
    if scheme == TRACKING_SCHEME:
        if rest.startswith("//"):
            raise SourceRefused(
                f"source '{text}' names a tracking server host: mlplane reads "
                f"{TRACKING_SCHEME}:/<path> from the tracking server it is configured with.",
                field="source",
            )
        if not _clean_path(rest.lstrip("/"), allow_empty=False):
            raise _refused(text)
        return LocationUri(f"{TRACKING_SCHEME}:/{rest.lstrip('/')}")
    if scheme in ("s3", "file"):
        return LocationUri(text)
    raise _refused(text)


def _clean_path(path: str, *, allow_empty: bool) -> bool:
    inner = path.strip("/")
    if not inner:
        return allow_empty
    return all(s not in (".", "..") and _SEGMENT.fullmatch(s) for s in inner.split("/"))


def _refused(text: str) -> SourceRefused:
    return SourceRefused(
        f"source '{text}' is not one mlplane can read: use s3://<bucket>/<key> (under a "
        "location configured for your team), an upload completed through the registry, "
        f"runs:/<run_id>/<path>, models:/<model_id> or {TRACKING_SCHEME}:/<path> (with a "
        "tracking server configured), or models:/<name>/<version> of this registry.",
        field="source",
    )


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What an MLflow run says of itself: its tags and its page on the tracking server."""

    tags: Mapping[str, str]
    url: str | None = None


def https_repository(url: str | None) -> str | None:
    """A git remote as an https URL (`git@host:org/repo.git` too); None when it is not one."""
    if not url:
        return None
    scp = _SCP_GIT.fullmatch(url.strip())
    if scp is not None:
        return f"https://{scp[1]}/{scp[2]}"
    parts = urlsplit(url.strip())
    if parts.scheme in ("https", "http") and parts.netloc and "@" not in parts.netloc:
        return url.strip().removesuffix(".git")
    return None


def lineage_of(
    given: Mapping[str, str],
    run_link: str | None,
    run: RunFacts | None,
    *,
    repository_tag: str,
    commit_tag: str,
    ci_run_tag: str,
    ref_tag: str,
) -> Lineage:
    """The lineage from the caller's `mlplane.*` tags first, then `run_link`, then the
    MLflow run's tags and URL; parts nobody names stay empty (`Lineage.attested` False)."""
    tags = run.tags if run is not None else {}
    commit = given.get(commit_tag) or tags.get(GIT_COMMIT_RUN_TAG) or ""
    if _GIT_COMMIT.fullmatch(commit) is None:
        commit = ""
    repository = https_repository(given.get(repository_tag)) or https_repository(
        tags.get(GIT_REPO_RUN_TAG)
    )
    ci_run = given.get(ci_run_tag) or run_link or (run.url if run is not None else None)
    return Lineage(
        git_repository=repository or "",
        commit_sha=commit,
        ci_run_url=ci_run if ci_run and _WEB_URL.fullmatch(ci_run) else "",
        git_ref=given.get(ref_tag) or None,
    )
