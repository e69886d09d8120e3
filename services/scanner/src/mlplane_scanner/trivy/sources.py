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
