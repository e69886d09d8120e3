"""GzipMember: a valid gzip member whose bytes depend only on the input and the level."""

from __future__ import annotations

import gzip
import random
import struct
import zlib

import pytest
from mlplane_builder.image.gzip_member import FEED_BLOCK, HEADER, GzipMember


def sample(size: int, seed: int) -> bytes:
    """Partly compressible bytes: random runs between repeats, as weights and text mix."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(rng.randint(1, 200)) + b"w" * rng.randint(0, 300)
    return bytes(out[:size])


def member(data: bytes, splits: list[int], level: int = 1) -> bytes:
    encoder = GzipMember(level)
    out = [HEADER]
    start = 0
    for length in splits:
        out += encoder.compress(data[start : start + length])
        start += length
    out += encoder.compress(data[start:])
    out.append(encoder.finish())
    return b"".join(out)


DATA = sample(3 * FEED_BLOCK + 12345, seed=7)


class TestFormat:
    def test_the_header_has_no_time_no_name_and_a_fixed_os(self) -> None:
        magic, method, flags, mtime, xfl, os_byte = struct.unpack("<HBBIBB", HEADER)
        assert (magic, method, flags, mtime, xfl, os_byte) == (0x8B1F, 8, 0, 0, 0, 255)

    @pytest.mark.parametrize("level", [0, 1, 2, 3])
    def test_gzip_reads_back_the_input_at_every_level(self, level: int) -> None:
        assert gzip.decompress(member(DATA, [], level)) == DATA

    def test_the_trailer_carries_crc32_and_size(self) -> None:
        crc, size = struct.unpack("<II", member(DATA, [])[-8:])
        assert (crc, size) == (zlib.crc32(DATA), len(DATA))

    def test_empty_input_is_a_valid_empty_member(self) -> None:
        assert gzip.decompress(member(b"", [])) == b""


class TestDeterminism:
    @pytest.mark.parametrize("level", [1, 2, 3])
    @pytest.mark.parametrize(
        "splits",
        [
            [1],
            [FEED_BLOCK],
            [FEED_BLOCK - 1, 2],
            [12345] * 50,
            [4 * FEED_BLOCK],
            [7, FEED_BLOCK * 2],
        ],
    )
    def test_how_the_input_is_split_does_not_change_the_bytes(
        self, splits: list[int], level: int
    ) -> None:
        # ISA-L alone gives different bytes for different splits at these levels.
        assert member(DATA, splits, level) == member(DATA, [], level)

    def test_levels_give_different_bytes(self) -> None:
        assert len({member(DATA, [], level) for level in range(4)}) == 4


class TestMisuse:
    @pytest.mark.parametrize("level", [-1, 4, 9])
    def test_a_level_outside_isal_range_is_refused(self, level: int) -> None:
        with pytest.raises(ValueError, match=r"0\.\.3"):
            GzipMember(level)

    def test_nothing_is_accepted_after_finish(self) -> None:
        encoder = GzipMember()
        encoder.finish()
        with pytest.raises(RuntimeError):
            encoder.compress(b"x")
        with pytest.raises(RuntimeError):
            encoder.finish()
