"""The drift service's errors: each an `MlplaneError` with its HTTP status and problem type.

Non-retryable ones (4xx) dead-letter a bus event at once, with the detail as the reason.
"""

from __future__ import annotations

from mlplane_runtime.errors import (
    PROBLEM_BASE_URI,
    Conflict,
    Forbidden,
    InvalidInput,
    MlplaneError,
    NotFound,
)


class VersionNotFound(NotFound):
    """The caller's team has no such registered model version (as far as drift learnt)."""


class ReferenceNotFound(NotFound):
    pass


class ReportNotFound(NotFound):
    pass


class NoReference(Conflict):
    """Samples for a version that has no reference profile yet: nothing to compare with."""

    problem_type = f"{PROBLEM_BASE_URI}/drift-no-reference"
    title = "No reference profile"


class InvalidSamples(InvalidInput):
    """A batch of samples that can never be folded into a window (wrong schema or types,
    empty, nothing but missing values)."""

    problem_type = f"{PROBLEM_BASE_URI}/drift-invalid-samples"
    title = "Invalid samples"


class InvalidDataset(InvalidInput):
    """A dataset (Parquet or CSV) that cannot be read or holds no usable feature."""

    problem_type = f"{PROBLEM_BASE_URI}/drift-invalid-dataset"
    title = "Invalid dataset"


class InvalidLocation(InvalidInput):
    pass


class InvalidWindowPolicy(InvalidInput):
    pass


class LocationNotAllowed(Forbidden):
    """A dataset named outside the team's data locations."""


class DatasetsUnavailable(Conflict):
    """No object storage is configured to read `s3://` datasets from."""


class DatasetTooLarge(MlplaneError):
    status = 413
    problem_type = f"{PROBLEM_BASE_URI}/body-too-large"
    title = "Dataset too large"
    retryable = False
