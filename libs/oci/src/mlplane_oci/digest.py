"""Content digests (`sha256:<64 hex>`), as the OCI image spec defines them."""

from __future__ import annotations

import hashlib
import re

from mlplane_oci.errors import InvalidReference

# Algorithms registered by the OCI image spec, with the hex length each produces.
_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_DIGEST = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-f0-9]+)$")


def validate_digest(digest: str) -> str:
    """`digest` itself when it is `sha256:`/`sha512:` and the right length of lowercase hex.

    Raises `InvalidReference` otherwise.
    """
    match = _DIGEST.match(digest)
    if match is None:
        raise InvalidReference(f"not a digest: {digest!r}")
    algorithm, hexpart = match.groups()
    expected = _HEX_LENGTHS.get(algorithm)
    if expected is None:
        raise InvalidReference(f"unsupported digest algorithm {algorithm!r} in {digest!r}")
    if len(hexpart) != expected:
        raise InvalidReference(f"{algorithm} digest needs {expected} hex digits: {digest!r}")
    return digest


def is_digest(reference: str) -> bool:
    """True when a manifest reference is a digest rather than a tag."""
    return ":" in reference


def sha256_digest(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def hasher_for(digest: str) -> hashlib._Hash:
    """A fresh hash object of the algorithm `digest` names (validated first)."""
    algorithm = validate_digest(digest).split(":", 1)[0]
    return hashlib.new(algorithm)


def digest_of(content: bytes, like: str) -> str:
    """`content`'s digest with the algorithm of `like` (another digest)."""
    hasher = hasher_for(like)
    hasher.update(content)
    return f"{like.split(':', 1)[0]}:{hasher.hexdigest()}"
