"""What an `OciClient` has sent, counted so tests and metrics can see how work was done.

Tests of the builder assert "base layers mounted, not uploaded" with these: a
mounted layer shows as one `("POST", "mount")` request and no bytes uploaded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

RequestKind = Literal[
    "ping",  # GET /v2/
    "token",  # the Bearer token endpoint
    "blob",  # HEAD or GET of a blob
    "blob-upload",  # POST, PATCH, PUT, GET (status) or DELETE of an upload session
    "mount",  # POST ?mount=&from=
    "manifest",  # HEAD, GET or PUT of a manifest
]


@dataclass
class RequestStats:
    """Counts of HTTP requests sent (every attempt, retries included) and of outcomes."""

    requests: Counter[tuple[str, RequestKind]] = field(default_factory=Counter)
    bytes_uploaded: int = 0  # blob bytes sent in PUT and PATCH bodies, re-sends included
    blobs_uploaded: int = 0  # uploads completed
    blobs_mounted: int = 0  # cross-repository mounts the registry did
    blobs_already_present: int = 0  # pushes skipped because the registry had the blob
    retries: int = 0  # tries after a failure (connection error, 429, 5xx)

    def count(self, method: str, kind: RequestKind) -> int:
        return self.requests[(method, kind)]

    def total(self, kind: RequestKind) -> int:
        """Requests of one kind, all methods together."""
        return sum(n for (_, k), n in self.requests.items() if k == kind)

    def reset(self) -> None:
        self.requests.clear()
        self.bytes_uploaded = 0
        self.blobs_uploaded = 0
        self.blobs_mounted = 0
        self.blobs_already_present = 0
        self.retries = 0
