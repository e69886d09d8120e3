"""Image assembly without a Docker daemon: the model layer, the image config, the manifest.

Pure or streaming pieces; pushing them to a registry is the OCI client's job,
keeping them on the local disk is `OciLayout`'s.
"""

from mlplane_builder.image.config import derive_config, merge_env, scratch_config
from mlplane_builder.image.layer import DEFAULT_CHUNK_SIZE, BuiltLayer, LayerFile, LayerStream
from mlplane_builder.image.layout import OciLayout, StoredManifest, WrittenBlob, check_ref_name
from mlplane_builder.image.manifest import (
    Descriptor,
    ParsedManifest,
    check_digest,
    digest_of,
    image_manifest,
    parse_image_manifest,
    select_platform,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "BuiltLayer",
    "Descriptor",
    "LayerFile",
    "LayerStream",
    "OciLayout",
    "ParsedManifest",
    "StoredManifest",
    "WrittenBlob",
    "check_digest",
    "check_ref_name",
    "derive_config",
    "digest_of",
    "image_manifest",
    "merge_env",
    "parse_image_manifest",
    "scratch_config",
    "select_platform",
]
