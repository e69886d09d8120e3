"""Artifact storage: the `ArtifactStore` port and its S3 and local-disk adapters.

Wiring (the composition root): with object storage configured, build
`S3ArtifactStore(endpoint_url, bucket, region, access_key, secret_key,
public_endpoint_url=...)` and `start()` it in the lifespan (`close()` on the way
out); in the embedded mode build `LocalDiskArtifactStore(<service data dir> /
"artifacts", base_url=<public URL of the registry API>)` and mount
`local_http.build_router(store)` with the registry's routers so its signed URLs
are served. Nothing here is built at import time.
"""

from mlplane_registry.artifacts.errors import (
    ArtifactMismatch,
    ArtifactNotFound,
    InvalidUpload,
    PartTooLarge,
    UploadExpired,
    UploadNotFound,
)
from mlplane_registry.artifacts.store import (
    DEFAULT_PART_SIZE,
    ArtifactInfo,
    ArtifactStore,
    PartUpload,
    UploadPlan,
)

__all__ = [
    "DEFAULT_PART_SIZE",
    "ArtifactInfo",
    "ArtifactMismatch",
    "ArtifactNotFound",
    "ArtifactStore",
    "InvalidUpload",
    "PartTooLarge",
    "PartUpload",
    "UploadExpired",
    "UploadNotFound",
    "UploadPlan",
]
