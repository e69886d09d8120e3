"""A model artifact streamed into one reproducible gzip tar layer, hashed on the way.

`LayerStream` turns a stream of the file's bytes (or of a model directory's files,
back to back) into the gzip bytes of a layer holding them, in constant memory, and
knows the layer's digest and diff-id once the last byte is out. The CPU work (sha256
of the tar, sha256 of the gzip, deflate) runs in worker threads, two at a time:
ISA-L and hashlib release the GIL, so one thread compresses a chunk while the other
hashes it, and the event loop meanwhile reads the next chunk from the source and
hands the previous output to the consumer.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlplane_oci.media_types import OCI_LAYER_GZIP

from mlplane_builder.image.errors import LayerSizeMismatch
from mlplane_builder.image.gzip_member import HEADER, Chunk, GzipMember
from mlplane_builder.image.tar_entries import (
    END_OF_ARCHIVE,
    LayerFile,
    tar_padding,
    tar_prefix,
)

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = ["DEFAULT_CHUNK_SIZE", "BuiltLayer", "LayerFile", "LayerStream"]

DEFAULT_CHUNK_SIZE = 4 * 2**20


@dataclass(frozen=True, slots=True)
class BuiltLayer:
    """What a finished layer is: its descriptor fields and its diff-id for the image config."""

    digest: str
    diff_id: str
    size: int
    uncompressed_size: int
    media_type: str = OCI_LAYER_GZIP


class LayerStream:
    """The gzip bytes of a layer of one file or several, produced while `source` is read.

    Iterate once: every chunk but the last is exactly `chunk_size` bytes (with
    `exact_chunks`; else the compressor's pieces are yielded as they come, about
    a feed block each, which saves copying every byte into chunks when the
    consumer does not need them: a streamed upload). `source` must stream
    exactly the files' bytes, one after the other in the
    order given (`file.size` bytes each), in pieces of any size that may cross
    from one file to the next; otherwise iteration raises `LayerSizeMismatch`
    (as soon as it streams one byte too many, or when it ends short). The bytes
    depend only on the files' content, paths and modes, their order and on
    `compression_level`, not on how the source splits its content nor on
    `chunk_size`. Give several files in path order: each directory is then
    written once.

    Memory stays at a few times `chunk_size` whatever the files' size. The
    stream owns `source`: it closes it (`aclose`, when it has one) once it
    ends, fails or is closed itself.
    """

    def __init__(
        self,
        file: LayerFile | Sequence[LayerFile],
        source: AsyncIterable[bytes],
        *,
        compression_level: int = 1,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        exact_chunks: bool = True,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self._files = (file,) if isinstance(file, LayerFile) else tuple(file)
        self._source = source
        self._chunk_size = chunk_size
        # Exact: the outbox hands out chunks of this size once it holds one (the rest
        # at the end); else every piece as soon as it is there.
        self._take_size = chunk_size if exact_chunks else None
        self._hold = chunk_size if exact_chunks else 1
        self._member = GzipMember(compression_level)  # checks the level now, not mid-stream
        self._started = False
        self._result: BuiltLayer | None = None

    @property
    def result(self) -> BuiltLayer:
        """The built layer; raises `RuntimeError` until the stream has been read to its end."""
        if self._result is None:
            raise RuntimeError("the layer is not built until its stream has been read to the end")
        return self._result

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._started:
            raise RuntimeError("a LayerStream can be iterated only once")
        self._started = True
        return self._gzip_chunks()

    async def _gzip_chunks(self) -> AsyncIterator[bytes]:
        tar_sha = hashlib.sha256()
        gzip_sha = hashlib.sha256()
        tar_size = 0
        gzip_size = 0
        outbox = _Outbox(HEADER)
        # Gzip bytes not hashed yet: the next step's hashing thread takes them.
        unhashed: list[bytes] = [HEADER]
        step: asyncio.Task[list[bytes]] | None = None
        tar_chunks = self._tar_chunks()
        try:
            async for tar_chunk in tar_chunks:
                if step is not None:
                    unhashed = await step
                    outbox.put(unhashed)
                step = asyncio.create_task(self._step(tar_chunk, tar_sha, gzip_sha, unhashed))
                unhashed = []
                tar_size += len(tar_chunk)
                del tar_chunk
                # The consumer works on these while the step runs in its threads,
                # and the loop reads the next tar chunk meanwhile.
                while outbox.size >= self._hold:
                    chunk = outbox.take(self._take_size)
                    gzip_size += len(chunk)
                    yield chunk
                    del chunk
            if step is not None:
                unhashed = await step
                outbox.put(unhashed)
                step = None
            tail = await asyncio.to_thread(self._member.finish)
            await asyncio.to_thread(_update, gzip_sha, [*unhashed, tail])
            outbox.put([tail])
            del unhashed, tail
            while outbox.size:
                chunk = outbox.take(self._take_size)
                gzip_size += len(chunk)
                # Set before the last yield: a consumer that stops once it has
                # every byte it expects still finds the result.
                if not outbox.size:
                    self._result = BuiltLayer(
                        digest=f"sha256:{gzip_sha.hexdigest()}",
                        diff_id=f"sha256:{tar_sha.hexdigest()}",
                        size=gzip_size,
                        uncompressed_size=tar_size,
                    )
                yield chunk
        finally:
            # Closed early or failed: the source is closed now, not whenever the
            # garbage collector finalizes it (it may hold a connection).
            await tar_chunks.aclose()
            if step is not None:
                # A closed stream waits for its step so no thread works on after
                # it (a cancelled one cannot: threads are not interruptible).
                await asyncio.wait([step])
                if not step.cancelled():
                    step.exception()  # retrieved: the stream's own error wins

    async def _step(
        self, tar_chunk: bytearray, tar_sha: _Hash, gzip_sha: _Hash, unhashed: list[bytes]
    ) -> list[bytes]:
        compressed, _ = await asyncio.gather(
            asyncio.to_thread(self._member.compress, tar_chunk),
            asyncio.to_thread(_update_both, tar_sha, tar_chunk, gzip_sha, unhashed),
        )
        return compressed

    async def _tar_chunks(self) -> AsyncGenerator[bytearray, None]:
        """The uncompressed tar in `chunk_size` pieces (the last one shorter).

        Each piece is a fresh buffer handed over to the worker threads, so a
        source byte is copied once on its way in, whatever the source's pieces.
        """
        files = self._files
        declared = sum(file.size for file in files)
        cutter = _Cutter(self._chunk_size, b"")
        # The file being filled, and how many of its bytes are still to come.
        current, remaining = _next_file(files, -1, cutter)
        streamed = 0
        for full in cutter.full():
            yield full
        source = aiter(self._source)
        try:
            async for chunk in source:
                streamed += len(chunk)
                if streamed > declared:
                    last = files[-1].path if files else "/"
                    raise LayerSizeMismatch(last, declared, streamed, complete=False)
                view = memoryview(chunk).cast("B")
                while len(view):
                    taken = min(remaining, len(view))
                    cutter.push(view[:taken])
                    view = view[taken:]
                    remaining -= taken
                    if remaining == 0:
                        current, remaining = _next_file(files, current, cutter)
                for full in cutter.full():
                    yield full
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:
                await close()
        if streamed != declared:
            raise LayerSizeMismatch(files[current].path, declared, streamed, complete=True)
        cutter.push(END_OF_ARCHIVE)
        for full in cutter.full():
            yield full
        rest = cutter.rest()
        if rest:
            yield rest


def _next_file(files: Sequence[LayerFile], current: int, cutter: _Cutter) -> tuple[int, int]:
    """Close file `current` (its padding) and open the next one with bytes to come (its
    headers; empty files on the way get theirs too): that one's index and size, or
    `len(files)` and 0 once every file is complete."""
    while True:
        if current >= 0:
            cutter.push(tar_padding(files[current].size))
        current += 1
        if current == len(files):
            return current, 0
        file = files[current]
        cutter.push(tar_prefix(file, files[current - 1] if current else None))
        if file.size:
            return current, file.size


class _Cutter:
    """Re-cuts a byte stream into buffers of exactly `size` bytes."""

    def __init__(self, size: int, first: bytes) -> None:
        self._size = size
        self._ready: list[bytearray] = []
        self._filling = bytearray()
        self.push(first)

    def push(self, data: Chunk) -> None:
        view = memoryview(data).cast("B")
        while len(self._filling) + len(view) >= self._size:
            missing = self._size - len(self._filling)
            self._filling += view[:missing]
            view = view[missing:]
            self._ready.append(self._filling)
            self._filling = bytearray()
        self._filling += view

    def full(self) -> list[bytearray]:
        ready, self._ready = self._ready, []
        return ready

    def rest(self) -> bytearray:
        rest, self._filling = self._filling, bytearray()
        return rest


class _Outbox:
    """Gzip pieces waiting to go out, taken in exact sizes or piece by piece.

    The pieces are kept as they are (the hashing thread reads the same
    objects), so each output byte is copied at most once: into the chunk it
    leaves in.
    """

    def __init__(self, first: bytes) -> None:
        self._pieces: deque[memoryview] = deque()
        self.size = 0
        self.put([first])

    def put(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            if piece:
                self._pieces.append(memoryview(piece))
                self.size += len(piece)

    def take(self, size: int | None) -> bytes:
        """The next `size` bytes (fewer at the end); None: the next piece as it is,
        not copied."""
        if size is None:
            piece = self._pieces.popleft()
            self.size -= len(piece)
            whole = piece.obj
            return whole if isinstance(whole, bytes) and len(whole) == len(piece) else bytes(piece)
        parts: list[memoryview] = []
        wanted = min(size, self.size)
        while wanted:
            piece = self._pieces.popleft()
            if len(piece) > wanted:
                self._pieces.appendleft(piece[wanted:])
                piece = piece[:wanted]
            parts.append(piece)
            wanted -= len(piece)
            self.size -= len(piece)
        return b"".join(parts)


def _update(digest: _Hash, pieces: list[bytes]) -> None:
    for piece in pieces:
        digest.update(piece)


def _update_both(
    tar_sha: _Hash, tar_chunk: Chunk, gzip_sha: _Hash, gzip_pieces: list[bytes]
) -> None:
    tar_sha.update(tar_chunk)
    _update(gzip_sha, gzip_pieces)
