"""Errors of the Argo CD adapter: each an `MlplaneError` with its HTTP status."""

from __future__ import annotations

from mlplane_runtime.errors import Conflict, InvalidInput, Unavailable


class ArgoCdUnavailable(Unavailable):
    """The Kubernetes API did not answer, or kept answering 409/429/5xx; worth retrying."""


class ArgoCdNotInstalled(Unavailable):
    """The cluster has no `applications.argoproj.io` resource (Argo CD's CRDs missing)."""


class ApplicationRejected(InvalidInput):
    """The API server refused the Application as invalid (400/422), or it is not one."""


class ApplicationOwnedElsewhere(Conflict):
    """Another field manager owns fields of the Application and forcing was not allowed."""
