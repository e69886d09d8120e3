"""What the scanner can hand Trivy: an image in a registry, or an OCI image layout on disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class RegistryImage:
    """An image pulled straight from its registry; credentials go to Trivy by environment."""

    reference: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        return self.reference


@dataclass(frozen=True, slots=True)
class LayoutImage:
    """An OCI image layout directory (embedded mode keeps images on the local disk)."""

    path: Path

    def describe(self) -> str:
        return f"oci-layout:{self.path}"


ImageSource = RegistryImage | LayoutImage


_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


def on_loopback(image: RegistryImage) -> bool:
    """True when the image's registry is on this machine (`localhost:5000/...`).

    Such a registry speaks plain http, as the builder assumes when it pushes there;
    an operator need not say so twice.
    """
    first, _, rest = image.reference.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        return False  # Docker Hub shorthand: `library/python`, `python`
    host = first.split("]")[0] + "]" if first.startswith("[") else first.rsplit(":", 1)[0]
    return host in _LOOPBACK_HOSTS
