"""Which artifacts of the MLflow tracking server a team's builds may read.

The tracking server is one per platform; what keeps teams apart on it is the same rule
the registry applies before it registers a version: a team's `mlflow-artifacts:/<path>`
is read only under a location configured for it (`mlflow-artifacts:/<prefix>/`, or
`mlflow-artifacts:/` for all of it). Paths are taken strictly (no host, no '.', '..' or
empty segment, no '%', query or fragment), so a prefix match means what it says.
Events carry such an artifact as `mlflow-artifacts:///<path>` (their URIs have a
`//`), the same location with an empty host.
No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mlplane_runtime.mlflow_artifacts import ARTIFACTS_SCHEME

EMPTY_HOST = f"{ARTIFACTS_SCHEME}//"
_SEGMENT = re.compile(r"[A-Za-z0-9._=+@,!*'()~ -]+")


def _clean(segments: Iterable[str]) -> bool:
    return all(s not in (".", "..") and _SEGMENT.fullmatch(s) for s in segments)


def tracking_location_prefix(location: str) -> str | None:
    """The path prefix of a location (`mlflow-artifacts:/1/` -> `1/`, `mlflow-artifacts:/`
    -> ``); None unless it is `mlflow-artifacts:/` or `mlflow-artifacts:/<prefix>/`."""
    if not location.startswith(ARTIFACTS_SCHEME):
        return None
    rest = location.removeprefix(ARTIFACTS_SCHEME)
    if rest == "":
        return rest
    if rest.startswith("/") or not rest.endswith("/") or not _clean(rest[:-1].split("/")):
        return None
    return rest


def tracking_path(uri: str) -> str | None:
    """The artifact path of a strict `mlflow-artifacts:/<path>` URI, or of
    `mlflow-artifacts:///<path>` (the same with an empty host, as events carry it), a
    trailing '/' aside; None for anything else (a host names another server)."""
    if uri.startswith(EMPTY_HOST):
        path = uri.removeprefix(EMPTY_HOST)
    elif uri.startswith(ARTIFACTS_SCHEME) and not uri.startswith(f"{ARTIFACTS_SCHEME}/"):
        path = uri.removeprefix(ARTIFACTS_SCHEME)
    else:
        return None
    path = path.removesuffix("/")
    if not path or path.startswith("/") or not _clean(path.split("/")):
        return None
    return path


def tracking_allows(uri: str, locations: Iterable[str]) -> bool:
    """Whether `uri` is an artifact strictly below one of `locations`."""
    path = tracking_path(uri)
    if path is None:
        return False
    for location in locations:
        prefix = tracking_location_prefix(location)
        if prefix is not None and path.startswith(prefix) and len(path) > len(prefix):
            return True
    return False
