"""The deployer's domain errors: each an `MlplaneError` with its HTTP status."""

from __future__ import annotations

from mlplane_runtime.errors import Conflict, InvalidInput, NotFound, Unavailable


class InvalidEnvironments(InvalidInput):
    """An environment list or rule that can never be valid as sent."""


class InvalidDeploymentPolicy(InvalidInput):
    """A deployment policy that can never be valid (unknown environment, bad version)."""


class UnknownEnvironment(NotFound):
    """The team has no environment of that name."""


class InvalidPhaseTransition(Conflict):
    """A deployment cannot move from its phase to the one asked for."""


class InvalidImageReference(InvalidInput):
    """An image that is not `repository@sha256:<64 hex>` (a tag, or no digest)."""


class InvalidRenderInput(InvalidInput):
    """Rendering inputs that cannot make a valid deployment (canary without a gateway)."""


class InvalidManifests(InvalidInput):
    """Rendered objects that do not validate against their schemas; `errors` lists each."""


class InvalidChangeMessage(InvalidInput):
    """A GitOps commit message field that would break the message's structure."""


class GitOpsUnavailable(Unavailable):
    """The GitOps remote did not answer or refused us; worth retrying."""


class GitOpsConflict(Conflict):
    """A GitOps change that cannot be applied on the current branch (a revert conflict)."""


class ChangeNotFound(NotFound):
    """No commit on the GitOps branch carries that change id."""
