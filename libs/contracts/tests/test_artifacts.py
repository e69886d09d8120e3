"""mlplane_contracts.artifacts: the digest of a directory artifact, as registry and builder
both compute it."""

from __future__ import annotations

import hashlib

from mlplane_contracts.artifacts import tree_digest


def test_a_directory_digest_is_its_sorted_manifests() -> None:
    files = [("b/x", 2, "2" * 64), ("a", 1, "1" * 64)]
    manifest = f"{'1' * 64}  a\n{'2' * 64}  b/x\n"
    assert tree_digest(files) == (3, hashlib.sha256(manifest.encode()).hexdigest())
    assert tree_digest(reversed(files)) == tree_digest(files)


def test_an_empty_directory_is_the_digest_of_nothing() -> None:
    assert tree_digest([]) == (0, hashlib.sha256(b"").hexdigest())
