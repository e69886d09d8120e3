"""Image references: `host[:port]/repo/path[:tag][@sha256:...]`, parsed and printed.

Names follow the distribution reference grammar. A reference whose first path
component does not look like a host (no `.` or `:`, not `localhost`) is a Docker
Hub name, normalised as the Docker CLI does: `python:3.11` is
`docker.io/library/python:3.11`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlplane_oci.digest import validate_digest
from mlplane_oci.errors import InvalidReference

DOCKER_HUB = "docker.io"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST_LABEL = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_HOST = re.compile(rf"^(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$")
# The whole name, as the registry's API paths limit it.
_MAX_NAME = 255


def validate_repository(repository: str) -> str:
    """`repository` itself when it is a valid repository path (`team/model`).

    Raises `InvalidReference` otherwise.
    """
    if len(repository) > _MAX_NAME or not _REPOSITORY.match(repository):
        raise InvalidReference(f"not a repository name: {repository!r}")
    return repository


def _looks_like_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


@dataclass(frozen=True)
class ImageReference:
    """Where an image is: registry host (with port), repository, tag and/or digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if not _HOST.match(self.registry):
            raise InvalidReference(f"not a registry host: {self.registry!r}")
        validate_repository(self.repository)
        if self.tag is not None and not _TAG.match(self.tag):
            raise InvalidReference(f"not a tag: {self.tag!r}")
        if self.digest is not None:
            validate_digest(self.digest)

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        """Parse `host[:port]/repo/path[:tag][@digest]`; raises `InvalidReference`."""
        rest, digest = text, None
        if "@" in rest:
            rest, digest = rest.split("@", 1)
        first, slash, remainder = rest.partition("/")
        if slash and _looks_like_host(first):
            registry, path = first, remainder
        else:
            registry, path = DOCKER_HUB, rest
        tag = None
        # A ':' after the last '/' is the tag; one before it belongs to the host.
        name, colon, maybe_tag = path.rpartition(":")
        if colon and "/" not in maybe_tag:
            path, tag = name, maybe_tag
        if registry == DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        if not path:
            raise InvalidReference(f"no repository in image reference {text!r}")
        return cls(registry=registry, repository=path, tag=tag, digest=digest)

    @property
    def reference(self) -> str:
        """What to ask the manifests endpoint for: the digest if known, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_digest(self, digest: str) -> ImageReference:
        return ImageReference(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text
