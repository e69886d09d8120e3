"""An OCI distribution client for registries such as Harbor, Docker Hub, CNCF distribution.

Shared: the builder pushes images with it, the scanner reads the vulnerability
database's version and images' manifests.
"""

from mlplane_oci.client import OciClient
from mlplane_oci.errors import (
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
from mlplane_oci.manifest import Manifest
from mlplane_oci.reference import ImageReference
from mlplane_oci.retry import RetryPolicy
from mlplane_oci.stats import RequestStats
from mlplane_oci.upload import PushedBlob

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
