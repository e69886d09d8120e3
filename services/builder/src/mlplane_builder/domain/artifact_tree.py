"""A model artifact that is a directory (an MLflow model): which files its layer holds.

The registry verified the directory as `ARTIFACT_TREE_MEDIA_TYPE`: its size is the sum
of its files' sizes, its sha256 the digest of their manifest
(`mlplane_contracts.artifacts.tree_digest`). The builder lists it again and checks the
listing before it reads a byte: every path one that lands at the same place for every
tar reader, none both a file and a directory, no more than the builder takes, and
sizes adding up to the registered size (otherwise the directory changed since). The
files go into the layer in path order, so the same directory gives the same layer.
No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mlplane_contracts.artifacts import ARTIFACT_TREE_MEDIA_TYPE

from mlplane_builder.domain import failures

__all__ = ["ARTIFACT_TREE_MEDIA_TYPE", "TreeFile", "too_many_files", "tree_files"]

# What a path segment inside a model directory may hold: what the registry accepts in
# artifact locations, no '%' (a quoted '..'), no '\' (a separator to some readers).
_SEGMENT = re.compile(r"[A-Za-z0-9._=+@,!*'()~ -]+")


@dataclass(frozen=True, slots=True)
class TreeFile:
    """A file of a model directory: its path below the directory ('/'-separated), size."""

    path: str
    size: int


def tree_files(
    uri: str, listed: Iterable[tuple[str, int]], *, size: int, max_files: int
) -> tuple[TreeFile, ...]:
    """The files of the directory at `uri`, from its listing (relative path, size), in
    path order. `size` is what the registry verified.

    Raises `BuildFailure`: artifact_missing for an empty directory; artifact_unreadable
    for a path no image can hold, a path that is a file and a directory at once, or more
    than `max_files` files; artifact_mismatch when the sizes do not add up to `size`.
    """
    files = sorted((TreeFile(path, n) for path, n in listed), key=lambda file: file.path)
    if not files:
        raise failures.artifact_missing(uri)
    if len(files) > max_files:
        raise too_many_files(uri, max_files)
    paths = {file.path for file in files}
    for file in files:
        segments = file.path.split("/")
        if any(s in (".", "..") or _SEGMENT.fullmatch(s) is None for s in segments):
            raise failures.artifact_unreadable(
                uri,
                f"it holds {file.path!r}, a path an image cannot hold as it is (only "
                "letters, digits, spaces and ._=+@,!*'()~- in names; no '.' or '..')",
            )
        for depth in range(1, len(segments)):
            if "/".join(segments[:depth]) in paths:
                raise failures.artifact_unreadable(
                    uri, f"{'/'.join(segments[:depth])!r} is both a file and a directory there"
                )
        if file.size < 0:
            raise failures.artifact_unreadable(uri, f"its listing gives {file.path!r} no size")
    total = sum(file.size for file in files)
    if total != size:
        raise failures.artifact_mismatch(
            uri, expected=f"{size} bytes", actual=f"{total} bytes", what="size"
        )
    return tuple(files)


def too_many_files(uri: str, max_files: int) -> failures.BuildFailure:
    return failures.artifact_unreadable(
        uri,
        f"it holds more than {max_files} files (MLPLANE_BUILDER_MAX_ARTIFACT_FILES; the "
        "registry's MLPLANE_REGISTRY_MLFLOW_REGISTRATION_MAX_FILES limits what it registers)",
    )
