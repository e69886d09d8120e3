"""Where profiles and reports are kept and datasets come from: S3, or the local disk."""

from mlplane_drift.blobs.local_disk import LocalDiskBlobStore
from mlplane_drift.blobs.s3 import S3BlobStore, split_s3_uri
from mlplane_drift.blobs.store import BlobNotFound, BlobStore, safe, version_key

__all__ = [
    "BlobNotFound",
    "BlobStore",
    "LocalDiskBlobStore",
    "S3BlobStore",
    "safe",
    "split_s3_uri",
    "version_key",
]
