"""Errors of image assembly, each an `MlplaneError` rendered as problem+json.

None is retryable: a wrong size, a broken manifest, a missing platform or a
damaged layout are facts about the inputs, which fail the same way again.
"""

from __future__ import annotations

from mlplane_runtime.errors import (
    PROBLEM_BASE_URI,
    Conflict,
    InvalidInput,
    MlplaneError,
    NotFound,
)


class LayerSizeMismatch(Conflict):
    """The artifact streamed into a layer is not the size its declaration says."""

    problem_type = f"{PROBLEM_BASE_URI}/layer-size-mismatch"
    title = "Layer content does not match its declared size"

    def __init__(self, path: str, declared: int, streamed: int, *, complete: bool) -> None:
        # Streaming stops at the first byte past the declared size, so an
        # oversized artifact is only known to be "at least" this big.
        amount = f"{streamed}" if complete else f"more than {declared}"
        super().__init__(
            f"{path}: declared {declared} bytes but the source streamed {amount} bytes",
            path=path,
            declared=declared,
            streamed=streamed,
        )


class InvalidLayerFile(InvalidInput):
    """A layer file with a path, size or mode that cannot go into an image."""

    problem_type = f"{PROBLEM_BASE_URI}/invalid-layer-file"
    title = "Invalid layer file"


class InvalidImageConfig(InvalidInput):
    """A base image config, an env entry or a label that cannot make a valid config."""

    problem_type = f"{PROBLEM_BASE_URI}/invalid-image-config"
    title = "Invalid image config"


class InvalidManifest(InvalidInput):
    """A manifest, index or descriptor that breaks the OCI (or Docker schema 2) format."""

    problem_type = f"{PROBLEM_BASE_URI}/invalid-manifest"
    title = "Invalid manifest"


class PlatformNotFound(NotFound):
    """An image index without a manifest for the wanted platform."""

    problem_type = f"{PROBLEM_BASE_URI}/platform-not-found"
    title = "Platform not found in the image index"


class InvalidRefName(InvalidInput):
    """A name for an image in an OCI layout that the layout spec's grammar refuses."""

    problem_type = f"{PROBLEM_BASE_URI}/invalid-ref-name"
    title = "Invalid OCI layout ref name"


class LayoutBlobMissing(NotFound):
    """A blob the OCI layout should hold (asked for, or named by its index) is not there."""

    problem_type = f"{PROBLEM_BASE_URI}/layout-blob-missing"
    title = "Blob missing from the OCI layout"


class CorruptLayout(MlplaneError):
    """The layout on disk is damaged: an unreadable index.json or a blob that hashes wrong."""

    status = 500
    problem_type = f"{PROBLEM_BASE_URI}/corrupt-oci-layout"
    title = "Corrupt OCI layout"
    retryable = False
