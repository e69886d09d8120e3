"""An OCI distribution client for registries such as Harbor, Docker Hub, CNCF distribution.

Shared: the builder pushes images with it, the scanner reads the vulnerability
database's version and images' manifests.
"""

from mlplane_runtime.oci.client import OciClient
from mlplane_runtime.oci.errors import (
    BlobNotFound,
    DigestMismatch,
    InvalidReference,
    ManifestNotFound,
    OciError,
    RegistryAuthFailed,
    RegistryCallFailed,
    RegistryUnavailable,
    UploadInterrupted,
)
from mlplane_runtime.oci.manifest import Manifest
from mlplane_runtime.oci.reference import ImageReference
from mlplane_runtime.oci.retry import RetryPolicy
from mlplane_runtime.oci.stats import RequestStats
from mlplane_runtime.oci.upload import PushedBlob

__all__ = [
    "BlobNotFound",
    "DigestMismatch",
    "ImageReference",
    "InvalidReference",
    "Manifest",
    "ManifestNotFound",
    "OciClient",
    "OciError",
    "PushedBlob",
    "RegistryAuthFailed",
    "RegistryCallFailed",
    "RegistryUnavailable",
    "RequestStats",
    "RetryPolicy",
    "UploadInterrupted",
]
