"""The builder's domain: build records and their life, image naming and contents, failures.

Pure Python: no I/O, no framework, no clock (callers pass `now`).
"""

from mlplane_builder.domain.builds import (
    FINISHED,
    Build,
    BuildNotRebuildable,
    BuildOutcome,
    BuildRequest,
    BuildStatus,
    BuiltLayerInfo,
)
from mlplane_builder.domain.failures import BuildFailure, FailureKind
from mlplane_builder.domain.image_spec import ImageSpec, artifact_file_name, image_spec
from mlplane_builder.domain.naming import image_repository, version_tag

__all__ = [
    "FINISHED",
    "Build",
    "BuildFailure",
    "BuildNotRebuildable",
    "BuildOutcome",
    "BuildRequest",
    "BuildStatus",
    "BuiltLayerInfo",
    "FailureKind",
    "ImageSpec",
    "artifact_file_name",
    "image_repository",
    "image_spec",
    "version_tag",
]
