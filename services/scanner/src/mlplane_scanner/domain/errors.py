"""The scanner's domain errors: each an `MlplaneError` with its HTTP status."""

from __future__ import annotations

from mlplane_runtime.errors import InvalidInput, NotFound, PreconditionFailed


class InvalidPolicy(InvalidInput):
    """A policy, exception or policy edit that can never be valid as sent."""


class InvalidVex(InvalidInput):
    """A VEX document that is not OpenVEX as this scanner reads it."""


class InvalidManifests(InvalidInput):
    """Rendered manifests that are not Kubernetes objects in YAML or JSON."""


class ExceptionNotFound(NotFound):
    pass


class ScanNotFound(NotFound):
    pass


class PolicyChanged(PreconditionFailed):
    """The policy's current version is not the one the caller's `If-Match` names."""
