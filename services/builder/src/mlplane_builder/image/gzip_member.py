"""One gzip member (RFC 1952) compressed by ISA-L, byte-identical for equal input.

Two things would otherwise make equal input give different bytes. The gzip
header: we write our own, with mtime 0, no file name and a fixed OS byte,
rather than trust a library's header to stay that way across versions. And
ISA-L itself: at levels 1 to 3 its deflate output depends on how the input is
split between `compress` calls, so the member feeds the compressor in blocks
of exactly `FEED_BLOCK` bytes at fixed offsets, whatever pieces it is given.
The output still depends on the ISA-L version, which the lock pins.
"""

from __future__ import annotations

import struct

from isal import isal_zlib

# 1f8b: gzip magic; 08: deflate; flags 0 (no name, comment or extra field);
# mtime 0; XFL 0; OS 255 "unknown", as Go's compress/gzip writes (and so
# containerd and Docker), which keeps our layers byte-comparable with theirs.
HEADER = bytes((0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xFF))
FEED_BLOCK = 1 << 20
LEVELS = range(4)  # ISA-L's levels; 1 is the fast one on incompressible weights

Chunk = bytes | bytearray | memoryview


class GzipMember:
    """Compresses a byte stream into one gzip member. Not thread-safe: one thread at a time."""

    def __init__(self, level: int = 1) -> None:
        if level not in LEVELS:
            raise ValueError(f"ISA-L compression level must be 0..3, got {level}")
        self._deflate = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
        self._pending = bytearray()
        self._crc = 0
        self._size = 0
        self._finished = False

    @property
    def uncompressed_size(self) -> int:
        """Bytes handed to the compressor so far (the ones still pending excluded)."""
        return self._size

    def compress(self, data: Chunk) -> list[bytes]:
        """Compressed pieces for `data`, in order; none while a feed block fills up.

        Pieces rather than one joined `bytes`: joining would hold a second copy
        of a whole chunk's output for a moment.
        """
        if self._finished:
            raise RuntimeError("the gzip member is already finished")
        view = memoryview(data).cast("B")
        out: list[bytes] = []
        if self._pending:
            missing = FEED_BLOCK - len(self._pending)
            self._pending += view[:missing]
            view = view[missing:]
            if len(self._pending) < FEED_BLOCK:
                return out
            out.append(self._feed(self._pending))
            self._pending = bytearray()
        while len(view) >= FEED_BLOCK:
            out.append(self._feed(view[:FEED_BLOCK]))
            view = view[FEED_BLOCK:]
        self._pending += view
        return out

    def finish(self) -> bytes:
        """The rest of the deflate stream and the trailer (CRC-32, size modulo 2**32)."""
        if self._finished:
            raise RuntimeError("the gzip member is already finished")
        self._finished = True
        tail = self._feed(self._pending) if self._pending else b""
        self._pending = bytearray()
        trailer = struct.pack("<II", self._crc, self._size & 0xFFFFFFFF)
        return tail + self._deflate.flush() + trailer

    def _feed(self, block: Chunk) -> bytes:
        self._crc = isal_zlib.crc32(block, self._crc)
        self._size += len(block)
        compressed: bytes = self._deflate.compress(block)
        return compressed
