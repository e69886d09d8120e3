"""A small, safe binary container for profiles and window summaries.

Layout: magic (4 bytes) | format version (1 byte) | zlib( u32 header length | JSON header |
arrays ). The JSON header holds scalars and strings; numeric arrays are raw little-endian
bytes whose dtype and length the header names. Nothing is ever unpickled or evaluated, and
every length is checked before it is used, so a corrupt or hostile blob fails with
`CorruptSummary` instead of allocating without bound.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt

from mlplane_drift.errors import CorruptSummary

# Bigger than any profile or summary the limits below allow (1024 edges x 2 cells x 16
# bytes x 10,000 features is ~330 MB; in practice a few MB): a cap on decompression.
MAX_DECODED_BYTES = 512 * 1024 * 1024
_DTYPES = {"i8": np.dtype("<i8"), "f8": np.dtype("<f8")}


def _payload(header: dict[str, Any], arrays: list[npt.NDArray[Any]]) -> bytes:
    specs: list[list[Any]] = []
    chunks: list[bytes] = []
    for array in arrays:
        code = "i8" if np.issubdtype(array.dtype, np.integer) else "f8"
        data = np.ascontiguousarray(array, dtype=_DTYPES[code])
        specs.append([code, int(data.size)])
        chunks.append(data.tobytes())
    body = json.dumps({"h": header, "a": specs}, separators=(",", ":"), allow_nan=True)
    raw = body.encode("utf-8")
    return struct.pack("<I", len(raw)) + raw + b"".join(chunks)


def encode(
    magic: bytes, version: int, header: dict[str, Any], arrays: list[npt.NDArray[Any]]
) -> bytes:
    """Pack a JSON-able header and int64/float64 arrays into one compressed blob."""
    # Level 1: float samples hardly compress at any level; empty cells (zeros) do at all.
    return magic + bytes([version]) + zlib.compress(_payload(header, arrays), 1)


def fingerprint(
    magic: bytes, version: int, header: dict[str, Any], arrays: list[npt.NDArray[Any]]
) -> str:
    """SHA-256 of what `encode` compresses: equal for equal contents, cheap to compute."""
    digest = hashlib.sha256(magic + bytes([version]))
    digest.update(_payload(header, arrays))
    return digest.hexdigest()


def decode(
    blob: bytes, magic: bytes, versions: frozenset[int]
) -> tuple[int, dict[str, Any], list[npt.NDArray[Any]]]:
    """Unpack a blob written by `encode`; raises `CorruptSummary` on anything unexpected."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise CorruptSummary("expected bytes")
    data = bytes(blob)
    if len(data) < len(magic) + 1 or data[: len(magic)] != magic:
        raise CorruptSummary("not a drift blob of the expected kind (bad magic)")
    version = data[len(magic)]
    if version not in versions:
        raise CorruptSummary(f"unsupported format version {version}")
    try:
        inflater = zlib.decompressobj()
        payload = inflater.decompress(data[len(magic) + 1 :], MAX_DECODED_BYTES)
        if inflater.unconsumed_tail:
            raise CorruptSummary("blob decompresses past the size limit")
    except zlib.error as exc:
        raise CorruptSummary(f"blob is not valid compressed data: {exc}") from exc
    if len(payload) < 4:
        raise CorruptSummary("blob is truncated")
    (header_len,) = struct.unpack("<I", payload[:4])
    if header_len > len(payload) - 4:
        raise CorruptSummary("blob header is truncated")
    try:
        meta = json.loads(payload[4 : 4 + header_len].decode("utf-8"))
        header = meta["h"]
        specs = meta["a"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptSummary("blob header is not valid") from exc
    if not isinstance(header, dict) or not isinstance(specs, list):
        raise CorruptSummary("blob header is not valid")
    arrays: list[npt.NDArray[Any]] = []
    offset = 4 + header_len
    for spec in specs:
        if (
            not isinstance(spec, list)
            or len(spec) != 2
            or spec[0] not in _DTYPES
            or not isinstance(spec[1], int)
            or spec[1] < 0
        ):
            raise CorruptSummary("blob array description is not valid")
        dtype = _DTYPES[spec[0]]
        size = spec[1] * dtype.itemsize
        if offset + size > len(payload):
            raise CorruptSummary("blob arrays are truncated")
        arrays.append(np.frombuffer(payload, dtype=dtype, count=spec[1], offset=offset).copy())
        offset += size
    if offset != len(payload):
        raise CorruptSummary("blob has trailing bytes")
    return version, header, arrays
