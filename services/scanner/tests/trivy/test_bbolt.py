"""The bbolt writer of the test support: the file's structure, read back page by page.

The reader here follows bbolt's format independently of the writer's code; that
real Trivy reads these files is shown by the image scans (their database is one).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from ..support.bbolt import (
    BRANCH_PAGE,
    FREELIST_PAGE,
    LEAF_PAGE,
    MAGIC,
    META_PAGE,
    PAGE_SIZE,
    fnv1a_64,
    write_bbolt,
)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.kinds: dict[int, int] = {}

    def header(self, page_id: int) -> tuple[int, int, int, int]:
        found: tuple[int, int, int, int] = struct.unpack_from(
            "<QHHI", self.data, page_id * PAGE_SIZE
        )
        return found

    def meta(self, page_id: int) -> dict[str, int]:
        offset = page_id * PAGE_SIZE + 16
        fields = struct.unpack_from("<IIIIQQQQQQ", self.data, offset)
        names = ("magic", "version", "page_size", "flags", "root", "seq", "freelist", "pgid")
        meta = dict(zip(names, fields, strict=False))
        meta["txid"], meta["checksum"] = fields[8], fields[9]
        meta["computed"] = fnv1a_64(self.data[offset : offset + 56])
        return meta

    def bucket_at_page(self, page_id: int) -> dict[bytes, Any]:
        page_start = page_id * PAGE_SIZE
        got_id, flags, count, _ = self.header(page_id)
        assert got_id == page_id
        self.kinds[page_id] = flags
        if flags == BRANCH_PAGE:
            merged: dict[bytes, Any] = {}
            for index in range(count):
                element = page_start + 16 + index * 16
                pos, ksize, child = struct.unpack_from("<IIQ", self.data, element)
                key = self.data[element + pos : element + pos + ksize]
                entries = self.bucket_at_page(child)
                assert min(entries) == key, "a branch key is its child's first key"
                merged.update(entries)
            return merged
        assert flags == LEAF_PAGE
        return self.leaf(self.data, page_start)

    def leaf(self, buffer: bytes, page_start: int) -> dict[bytes, Any]:
        _, flags, count, _ = struct.unpack_from("<QHHI", buffer, page_start)
        assert flags == LEAF_PAGE
        entries: dict[bytes, Any] = {}
        for index in range(count):
            element = page_start + 16 + index * 16
            kind, pos, ksize, vsize = struct.unpack_from("<IIII", buffer, element)
            key = buffer[element + pos : element + pos + ksize]
            value = buffer[element + pos + ksize : element + pos + ksize + vsize]
            entries[key] = self.bucket(value) if kind == 1 else value
        assert list(entries) == sorted(entries)
        return entries

    def bucket(self, value: bytes) -> dict[bytes, Any]:
        root, _ = struct.unpack_from("<QQ", value)
        return self.leaf(value, 16) if root == 0 else self.bucket_at_page(root)


def _read(path: Path) -> tuple[_Reader, dict[str, int], dict[bytes, Any]]:
    reader = _Reader(path.read_bytes())
    meta = reader.meta(0)
    return reader, meta, reader.bucket_at_page(meta["root"])


class TestFnv1a64:
    @pytest.mark.parametrize(
        ("data", "expected"),
        [(b"", 0xCBF29CE484222325), (b"a", 0xAF63DC4C8601EC8C), (b"foobar", 0x85944171F73967E8)],
    )
    def test_published_test_vectors(self, data: bytes, expected: int) -> None:
        assert fnv1a_64(data) == expected


class TestWriteBbolt:
    def test_nested_buckets_and_values_read_back(self, tmp_path: Path) -> None:
        tree = {
            b"vulnerability": {b"CVE-1": b'{"Title":"x"}'},
            b"pip::GitHub Security Advisory pip": {b"numpy": {b"CVE-1": b"{}"}},
            b"empty": {},
        }

        _, _, read = _read(write_bbolt(tmp_path / "t.db", tree))

        assert read == tree

    def test_both_meta_pages_are_valid_and_the_file_ends_at_the_high_water_mark(
        self, tmp_path: Path
    ) -> None:
        path = write_bbolt(tmp_path / "t.db", {b"b": {b"k": b"v"}})
        reader = _Reader(path.read_bytes())

        for page_id in (0, 1):
            meta = reader.meta(page_id)
            assert reader.header(page_id)[1] == META_PAGE
            assert meta["magic"] == MAGIC
            assert meta["version"] == 2
            assert meta["page_size"] == PAGE_SIZE
            assert meta["checksum"] == meta["computed"]
            assert meta["txid"] % 2 == page_id
            assert reader.header(meta["freelist"])[1:3] == (FREELIST_PAGE, 0)
            assert path.stat().st_size == meta["pgid"] * PAGE_SIZE

    def test_a_large_bucket_spans_leaf_pages_under_branch_pages(self, tmp_path: Path) -> None:
        packages = {
            f"package-{i:05d}".encode(): {f"CVE-{i}".encode(): b'{"FixedVersion":"1"}'}
            for i in range(6000)
        }
        tree = {b"debian 12": packages}

        reader, _, read = _read(write_bbolt(tmp_path / "t.db", tree))

        assert read == tree
        branches = [page for page, kind in reader.kinds.items() if kind == BRANCH_PAGE]
        # 6000 entries need more leaves than one branch page holds: two branch levels.
        assert len(branches) >= 3

    def test_a_value_larger_than_a_page_overflows_into_following_pages(
        self, tmp_path: Path
    ) -> None:
        big = b"x" * (3 * PAGE_SIZE)
        tree = {b"vulnerability": {b"CVE-big": big, b"CVE-small": b"{}"}}

        reader, meta, read = _read(write_bbolt(tmp_path / "t.db", tree))

        assert read == tree
        overflowing = [
            page
            for page in range(3, meta["pgid"])
            if page in reader.kinds and reader.header(page)[3] > 0
        ]
        assert len(overflowing) == 1
        assert reader.header(overflowing[0])[3] == 3

    def test_same_tree_same_bytes(self, tmp_path: Path) -> None:
        tree = {b"b": {b"k2": b"v", b"k1": {b"x": b"y"}}}

        first = write_bbolt(tmp_path / "1.db", tree).read_bytes()
        second = write_bbolt(tmp_path / "2.db", dict(reversed(tree.items()))).read_bytes()

        assert first == second

    def test_top_level_values_are_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="must be buckets"):
            write_bbolt(tmp_path / "t.db", {b"k": b"v"})

    def test_empty_keys_are_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="empty"):
            write_bbolt(tmp_path / "t.db", {b"b": {b"": b"v"}})
