"""The build of one image, start to finish, with no record-keeping: the worker does that.

base image → (an identical image already under the tag? reuse it) → base layers in
the target (present: skipped; same registry: mounted; else copied as a stream) →
artifact (its file, or its directory's files) streamed into the model layer while it
uploads → config → manifest.

Every failure leaves as a `BuildFailure` whose text says what to do about it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from mlplane_oci import OciClient
from mlplane_oci.errors import (
    InvalidReference,
    OciError,
    RegistryAuthFailed,
    RegistryUnavailable,
)
from mlplane_oci.media_types import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST
from mlplane_oci.reference import ImageReference

from mlplane_builder.artifact_source import ArtifactSource
from mlplane_builder.base_image import BaseImage, resolve_base_image
from mlplane_builder.domain import (
    BuildFailure,
    BuildOutcome,
    BuildRequest,
    BuiltLayerInfo,
    failures,
    image_spec,
    version_tag,
)
from mlplane_builder.domain.image_spec import (
    LABEL_BASE_DIGEST,
    LABEL_BASE_NAME,
    LABEL_BUILD_KEY,
    LABEL_CREATED,
    LABEL_REVISION,
    LABEL_SOURCE,
    MODEL_FILE_MODE,
)
from mlplane_builder.image.config import derive_config
from mlplane_builder.image.errors import InvalidImageConfig, InvalidManifest, LayerSizeMismatch
from mlplane_builder.image.layer import LayerStream
from mlplane_builder.image.manifest import Descriptor, image_manifest
from mlplane_builder.model_content import model_content
from mlplane_builder.targets import ImageTarget, Transfer

_log = logging.getLogger("mlplane.builder")
DEFAULT_LAYER_CHUNK_SIZE = 1024 * 1024

BaseClientFor = Callable[[str], Awaitable[OciClient]]
"""The OCI client of a registry host, for reading a base image there."""


@dataclass(frozen=True, slots=True)
class BuildPlan:
    """One build's inputs besides the request: where from, where to, how."""

    target: ImageTarget
    target_registry: str | None
    """The target's registry host, None for an OCI layout (it names failures)."""
    base_reference: str | None
    compression_level: int
    chunk_size: int
    stream_upload: bool = True
    """The model layer in one streamed upload request (else a PATCH per chunk)."""
    layer_chunk_size: int = DEFAULT_LAYER_CHUNK_SIZE
    """Bytes per step of the model layer's pipeline when the upload is streamed (else
    `chunk_size`, a PATCH's)."""


@dataclass(frozen=True, slots=True)
class BuildResult:
    outcome: BuildOutcome
    note: str | None
    artifact_seconds: float
    """Time spent streaming the model layer (0 for a reused image)."""


async def build_image(
    request: BuildRequest,
    plan: BuildPlan,
    *,
    artifacts: ArtifactSource,
    base_client_for: BaseClientFor,
) -> BuildResult:
    """Build and store `request`'s image as `plan` says; what was stored, how many bytes.

    Raises `BuildFailure` for every expected failure (artifact, base image, registry).
    """
    where = plan.target_registry or plan.target.repository
    async with _sorted_failures(where):
        return await _build(request, plan, artifacts, base_client_for)


async def _build(
    request: BuildRequest,
    plan: BuildPlan,
    artifacts: ArtifactSource,
    base_client_for: BaseClientFor,
) -> BuildResult:
    base: BaseImage | None = None
    base_client: OciClient | None = None
    note: str | None = None
    if plan.base_reference is None:
        note = (
            f"no base image is configured for framework {request.framework!r}: the image "
            "holds only the model layer (scratch base); set MLPLANE_BUILDER_BASE_IMAGES"
        )
    else:
        host = _registry_host(plan.base_reference)
        async with _sorted_failures(host):
            base_client = await base_client_for(host)
            base = await resolve_base_image(base_client, plan.base_reference, request.framework)

    spec = image_spec(
        request,
        base_image=None if base is None else base.pinned,
        compression_level=plan.compression_level,
    )
    tag = version_tag(request.version)
    target = plan.target

    existing = await target.existing(tag)
    if (
        existing is not None
        and existing.labels.get(LABEL_BUILD_KEY) == spec.labels[LABEL_BUILD_KEY]
    ):
        # Same inputs, same bytes: the image there is this build's result already.
        return BuildResult(
            BuildOutcome(
                repository=target.repository,
                digest=existing.digest,
                tag=tag,
                base_image=None if base is None else base.pinned,
                layers=tuple(
                    BuiltLayerInfo(d.digest, d.size, d.media_type) for d in existing.layers
                ),
                bytes_uploaded=0,
                reused=True,
            ),
            note,
            0.0,
        )

    transfer = Transfer()
    if base is not None:
        assert base_client is not None
        await target.ensure_base_layers(base, base_client, transfer, plan.chunk_size)

    started = time.monotonic()
    content = await model_content(request, artifacts, spec.model_path, MODEL_FILE_MODE)
    layer = LayerStream(
        content.files,
        content.chunks,
        compression_level=plan.compression_level,
        chunk_size=plan.layer_chunk_size if plan.stream_upload else plan.chunk_size,
        # A streamed upload takes pieces of any size: no copying them into chunks.
        exact_chunks=not plan.stream_upload,
    )
    stored = await target.store_stream(
        layer,
        None if plan.stream_upload else plan.chunk_size,
        # The layer hashes its gzip bytes itself: the upload need not hash them again
        # (and the registry checks the digest it is given).
        digest=lambda: layer.result.digest,
    )
    built = layer.result
    artifact_seconds = time.monotonic() - started
    if stored.digest != built.digest:
        raise failures.internal(f"the registry stored {stored.digest}, we sent {built.digest}")
    transfer.bytes_uploaded += stored.size

    config = derive_config(
        None if base is None else base.config,
        diff_id=built.diff_id,
        env=spec.env,
        labels=spec.labels,
        history_comment=spec.history_comment,
        created=spec.created,
    )
    stored_config = await target.store_blob(config)
    transfer.bytes_uploaded += stored_config.size

    model_layer = Descriptor(media_type=OCI_LAYER_GZIP, digest=built.digest, size=built.size)
    layers = (*(() if base is None else base.layers), model_layer)
    annotations = {
        LABEL_CREATED: spec.created,
        LABEL_SOURCE: spec.labels[LABEL_SOURCE],
        LABEL_REVISION: spec.labels[LABEL_REVISION],
    }
    if base is not None:
        annotations[LABEL_BASE_NAME] = spec.labels[LABEL_BASE_NAME]
        annotations[LABEL_BASE_DIGEST] = spec.labels[LABEL_BASE_DIGEST]
    manifest = image_manifest(
        Descriptor(media_type=OCI_CONFIG, digest=stored_config.digest, size=len(config)),
        layers,
        annotations,
    )
    digest = await target.store_manifest(manifest, OCI_MANIFEST, tag)
    transfer.bytes_uploaded += len(manifest)
    _log.debug(
        "base layers: %d present, %d mounted, %d copied",
        transfer.layers_present,
        transfer.layers_mounted,
        transfer.layers_copied,
    )
    return BuildResult(
        BuildOutcome(
            repository=target.repository,
            digest=digest,
            tag=tag,
            base_image=None if base is None else base.pinned,
            layers=tuple(BuiltLayerInfo(d.digest, d.size, d.media_type) for d in layers),
            bytes_uploaded=transfer.bytes_uploaded,
        ),
        note,
        artifact_seconds,
    )


def _registry_host(reference: str) -> str:
    try:
        return ImageReference.parse(reference).registry
    except InvalidReference as exc:
        raise failures.base_image_invalid(reference, exc.detail) from exc


@asynccontextmanager
async def _sorted_failures(registry: str) -> AsyncIterator[None]:
    """The OCI client's and image pieces' errors, as failures a person can act on."""
    try:
        yield
    except BuildFailure:
        raise
    except RegistryUnavailable as exc:
        raise failures.registry_unavailable(registry, exc.detail) from exc
    except RegistryAuthFailed as exc:
        raise failures.registry_denied(registry, exc.detail) from exc
    except OciError as exc:
        raise failures.registry_rejected(registry, exc.detail) from exc
    except LayerSizeMismatch as exc:
        raise failures.artifact_mismatch(
            "the artifact", expected="its registered size", actual=exc.detail, what="size"
        ) from exc
    except (InvalidManifest, InvalidImageConfig) as exc:
        raise failures.registry_rejected(registry, exc.detail) from exc
