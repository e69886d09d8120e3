"""Why a build failed, in words a person can act on, and whether trying again may help."""

from __future__ import annotations

from enum import StrEnum

from mlplane_runtime.errors import PROBLEM_BASE_URI, MlplaneError


class FailureKind(StrEnum):
    """A failure's class: the metric label, and what decides `retryable`."""

    ARTIFACT_MISSING = "artifact_missing"
    ARTIFACT_MISMATCH = "artifact_mismatch"
    ARTIFACT_UNREADABLE = "artifact_unreadable"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    BASE_IMAGE_MISSING = "base_image_missing"
    BASE_IMAGE_INVALID = "base_image_invalid"
    REGISTRY_UNAVAILABLE = "registry_unavailable"
    REGISTRY_DENIED = "registry_denied"
    REGISTRY_REJECTED = "registry_rejected"
    TIMED_OUT = "timed_out"
    WORKER_LOST = "worker_lost"
    INTERNAL = "internal"


# Worth another try with the same inputs: something outside was down or slow.
RETRYABLE_KINDS = frozenset(
    {
        FailureKind.STORAGE_UNAVAILABLE,
        FailureKind.REGISTRY_UNAVAILABLE,
        FailureKind.TIMED_OUT,
    }
)


class BuildFailure(MlplaneError):
    """A build that could not finish; `detail` says what to do about it."""

    status = 422
    problem_type = f"{PROBLEM_BASE_URI}/build-failed"
    title = "Build failed"

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail, kind=kind.value)
        self.kind = kind

    @property
    def can_retry(self) -> bool:
        return self.kind in RETRYABLE_KINDS


def artifact_missing(uri: str) -> BuildFailure:
    return BuildFailure(
        FailureKind.ARTIFACT_MISSING,
        f"the model artifact {uri} does not exist in object storage; upload it again "
        "(or register a new version) and the build starts by itself",
    )


def artifact_mismatch(uri: str, *, expected: str, actual: str, what: str) -> BuildFailure:
    return BuildFailure(
        FailureKind.ARTIFACT_MISMATCH,
        f"the model artifact {uri} changed after it was registered: its {what} is {actual}, "
        f"the registry verified {expected}; objects under a registered version must not be "
        "overwritten — register a new version instead",
    )


def artifact_unreadable(uri: str, why: str) -> BuildFailure:
    return BuildFailure(
        FailureKind.ARTIFACT_UNREADABLE,
        f"the model artifact {uri} cannot be read by the builder: {why}",
    )


def storage_unavailable(uri: str, why: str) -> BuildFailure:
    return BuildFailure(
        FailureKind.STORAGE_UNAVAILABLE,
        f"object storage did not answer while reading {uri} ({why}); the build is retried "
        "and can be started again with POST /builder/builds/<id>/rebuild",
    )


def base_image_missing(reference: str, framework: str) -> BuildFailure:
    return BuildFailure(
        FailureKind.BASE_IMAGE_MISSING,
        f"the base image {reference} configured for framework {framework!r} is not in its "
        "registry; push it there or fix MLPLANE_BUILDER_BASE_IMAGES, then rebuild",
    )


def base_image_invalid(reference: str, why: str) -> BuildFailure:
    return BuildFailure(
        FailureKind.BASE_IMAGE_INVALID,
        f"the base image {reference} cannot be used: {why}; configure a linux/amd64 OCI or "
        "Docker v2 image in MLPLANE_BUILDER_BASE_IMAGES",
    )


def registry_unavailable(registry: str, why: str) -> BuildFailure:
    return BuildFailure(
        FailureKind.REGISTRY_UNAVAILABLE,
        f"the container registry {registry} did not answer after retries ({why}); check "
        "that it is up and reachable from the builder, then rebuild",
    )


def registry_denied(registry: str, why: str) -> BuildFailure:
    return BuildFailure(
        FailureKind.REGISTRY_DENIED,
        f"the container registry {registry} refused the builder's credentials ({why}); "
        "check MLPLANE_BUILDER_REGISTRY_USERNAME / _PASSWORD and the robot account's push "
        "permission on the project",
    )


def registry_rejected(registry: str, why: str) -> BuildFailure:
    return BuildFailure(
        FailureKind.REGISTRY_REJECTED,
        f"the container registry {registry} rejected the image ({why})",
    )


def timed_out(limit_s: float) -> BuildFailure:
    return BuildFailure(
        FailureKind.TIMED_OUT,
        f"the build took longer than {limit_s:g} s (MLPLANE_BUILDER_BUILD_TIMEOUT_S); "
        "a slow registry or storage link, or a very large artifact: raise the limit",
    )


def worker_lost(attempts: int) -> BuildFailure:
    return BuildFailure(
        FailureKind.WORKER_LOST,
        f"the builder stopped while building, {attempts} times; look at the builder's logs "
        "for crashes or out-of-memory kills, then rebuild",
    )


def internal(why: str) -> BuildFailure:
    return BuildFailure(
        FailureKind.INTERNAL,
        f"the builder failed unexpectedly ({why}); this is a bug, please report it with "
        "the build id",
    )
