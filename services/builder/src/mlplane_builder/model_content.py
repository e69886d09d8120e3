"""What a version's model layer holds, read and checked on the way: its one model file,
or the files of its model directory (an MLflow model) one after the other.

Either way the bytes are checked against what the registry verified while they stream
into the layer, and a difference ends the stream before the layer's last byte: a
layer is never finished from bytes the registry did not verify. A directory's files
are each counted against the size its listing gave and hashed, and the directory's
digest (`mlplane_contracts.artifacts.tree_digest`) is compared once the last file is
read. Memory stays at about one chunk whatever the files' sizes.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from mlplane_contracts.artifacts import tree_digest

from mlplane_builder.artifact_source import ArtifactSource, verified
from mlplane_builder.domain import BuildRequest, failures
from mlplane_builder.domain.artifact_tree import TreeFile
from mlplane_builder.image.layer import LayerFile


@dataclass(frozen=True, slots=True)
class ModelContent:
    """The model layer's files (absolute paths in the image) and their bytes back to back."""

    files: tuple[LayerFile, ...]
    chunks: AsyncIterator[bytes]


async def model_content(
    request: BuildRequest, artifacts: ArtifactSource, model_path: str, mode: int
) -> ModelContent:
    """The content of `request`'s model layer: its file at `model_path`, or its directory's
    files below `model_path`, each with `mode`.

    Raises `BuildFailure` (a directory is listed now; a file's failures come when its
    chunks are read): see `ArtifactSource.chunks` and `ArtifactSource.tree`.
    """
    uri, team, model = request.artifact_uri, request.team, request.model
    if not request.artifact_is_directory:
        chunks = verified(
            uri,
            artifacts.chunks(uri, team=team, model=model),
            size=request.artifact_size,
            sha256=request.artifact_sha256,
        )
        return ModelContent((LayerFile(model_path, request.artifact_size, mode),), chunks)
    files = await artifacts.tree(uri, team=team, model=model, size=request.artifact_size)
    return ModelContent(
        tuple(LayerFile(f"{model_path}/{file.path}", file.size, mode) for file in files),
        verified_tree(
            uri,
            files,
            lambda file: artifacts.tree_chunks(uri, file),
            size=request.artifact_size,
            sha256=request.artifact_sha256,
        ),
    )


async def verified_tree(
    uri: str,
    files: Sequence[TreeFile],
    chunks_of: Callable[[TreeFile], AsyncIterator[bytes]],
    *,
    size: int,
    sha256: str,
) -> AsyncIterator[bytes]:
    """The bytes of `files` of the directory at `uri`, one file after the other, checked
    against the directory's `size` and `sha256` as the registry verified them.

    Raises `BuildFailure` (artifact_mismatch) as soon as a file streams more bytes than
    its listing said, when one ends short, or at the end when the directory's digest
    differs; the failures of `chunks_of` pass through.
    """
    seen: list[tuple[str, int, str]] = []
    for file in files:
        where = f"{uri.removesuffix('/')}/{file.path}"
        digest = hashlib.sha256()
        streamed = 0
        chunks = chunks_of(file)
        try:
            async for chunk in chunks:
                streamed += len(chunk)
                if streamed > file.size:
                    raise failures.artifact_mismatch(
                        where,
                        expected=f"{file.size} bytes",
                        actual=f"more than {file.size} bytes",
                        what="size",
                    )
                # Off the loop, as `verified` does: beside the layer's compression threads.
                await asyncio.to_thread(digest.update, chunk)
                yield chunk
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        if streamed != file.size:
            raise failures.artifact_mismatch(
                where, expected=f"{file.size} bytes", actual=f"{streamed} bytes", what="size"
            )
        seen.append((file.path, streamed, digest.hexdigest()))
    total, actual = tree_digest(seen)
    if total != size:
        raise failures.artifact_mismatch(
            uri, expected=f"{size} bytes", actual=f"{total} bytes", what="size"
        )
    if actual != sha256:
        raise failures.artifact_mismatch(uri, expected=sha256, actual=actual, what="sha256")
