"""A model artifact that is a directory (an MLflow model), as the registry and the builder
both read it: its media type and its digest.

The registry announces such an artifact in `model.version.registered` with
`media_type` `ARTIFACT_TREE_MEDIA_TYPE`, `uri` naming the directory, `size_bytes` the
sum of its files' sizes and `sha256` the digest of its manifest (`tree_digest`); the
builder reads the directory's files again and checks them against those two values.
Both sides compute the digest here, so they cannot drift apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

ARTIFACT_TREE_MEDIA_TYPE = "application/vnd.mlplane.artifact-tree.v1"
"""A directory artifact: its sha256 is that of its manifest, one line
`<sha256 of the file>  <path relative to the directory>` per file, sorted by path (what
`sha256sum` prints), and its size the sum of the files' sizes. Directories hold no
bytes of their own: an empty one is not part of the artifact."""


def tree_digest(files: Iterable[tuple[str, int, str]]) -> tuple[int, str]:
    """(size, sha256) of a directory from its files' (relative path, size, sha256)."""
    manifest = hashlib.sha256()
    total = 0
    for path, size, digest in sorted(files):
        manifest.update(f"{digest}  {path}\n".encode())
        total += size
    return total, manifest.hexdigest()
