"""A manifest as the registry stores it: exact bytes, their media type and digest.

The bytes are kept as received because the digest is over them; re-serialising
the JSON would change the digest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlplane_oci import media_types


@dataclass(frozen=True)
class Manifest:
    media_type: str
    digest: str
    content: bytes

    def json(self) -> dict[str, Any]:
        """The manifest's JSON document."""
        document = json.loads(self.content)
        if not isinstance(document, dict):
            raise ValueError("a manifest is a JSON object")
        return document

    @property
    def is_index(self) -> bool:
        """True for an OCI index or a Docker manifest list (a manifest of manifests)."""
        return self.media_type in media_types.INDEXES


def media_type_of(content_type: str | None, content: bytes) -> str:
    """The manifest's media type: the response's `Content-Type` without parameters,
    else the document's own `mediaType`, else OCI manifest (its field is optional)."""
    if content_type:
        bare = content_type.split(";", 1)[0].strip()
        if bare and bare not in ("application/json", "application/octet-stream", "text/plain"):
            return bare
    try:
        declared = json.loads(content).get("mediaType")
    except (ValueError, AttributeError):
        declared = None
    return declared if isinstance(declared, str) and declared else media_types.OCI_MANIFEST
