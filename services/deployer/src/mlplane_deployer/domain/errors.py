"""The deployer's domain errors: each an `MlplaneError` with its HTTP status."""

from __future__ import annotations

from mlplane_runtime.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    Unavailable,
)


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


class DeploymentNotFound(NotFound):
    """No deployment of that id in the caller's team."""


class ImageUnknown(NotFound):
    """No image is known for the version asked for: it was not built (or not yet)."""


class AliasUnknown(NotFound):
    """The model has no such alias, or the alias points at no version."""


class DeploymentDenied(Conflict):
    """The policy refuses the deployment; `reasons` lists every failed rule."""

    problem_type = "https://mlplane.io/problems/deployment-denied"
    title = "Deployment denied"


class RequesterCannotApprove(Forbidden):
    """The principal who requested a deployment tried to approve it."""

    problem_type = "https://mlplane.io/problems/requester-cannot-approve"
    title = "The requester cannot approve"


class DeploymentStateConflict(Conflict):
    """The deployment is not in a state that allows this (promote before commit, ...)."""


class PolicyChanged(PreconditionFailed):
    """The policy moved on since the `If-Match` version the caller read."""
