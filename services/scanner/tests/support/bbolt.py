"""A minimal, write-once bbolt (BoltDB) file writer: how tests give Trivy a real database.

Trivy's vulnerability database is a bbolt file and no Go toolchain can be had
here, so this writes the on-disk format directly (learned from bbolt's format
notes and reader). It writes one committed state and nothing else: no free
pages, no later transactions.

Layout (little-endian, as bbolt on amd64):
- every page starts with a 16-byte header: id u64, flags u16, count u16, overflow u32
  (overflow = how many further pages a large page spills into);
- pages 0 and 1 are meta pages (magic, version 2, page size, root bucket,
  freelist page, high-water page id, txid, FNV-1a 64 checksum of the meta);
- page 2 is an empty freelist page; bucket pages follow;
- a leaf page holds 16-byte element headers (flags u32, pos u32, ksize u32,
  vsize u32; `pos` counts from the element header to its key) then the keys and
  values; a branch page holds (pos u32, ksize u32, child page id u64) headers whose
  key is the first key of the child;
- a bucket is a value with flag 1: its root page id and sequence (u64 each); a
  root of 0 means an inline bucket, whose leaf page follows the header inside the
  value (bbolt inlines only small buckets with no sub-buckets, as here).

A tree is a mapping of byte keys to bytes (a value) or to a mapping (a nested bucket).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Union

PAGE_SIZE = 4096
MAGIC = 0xED0CDAED
FORMAT_VERSION = 2

BRANCH_PAGE = 0x01
LEAF_PAGE = 0x02
META_PAGE = 0x04
FREELIST_PAGE = 0x10
BUCKET_LEAF_FLAG = 0x01

PAGE_HEADER = struct.Struct("<QHHI")
LEAF_ELEMENT = struct.Struct("<IIII")
BRANCH_ELEMENT = struct.Struct("<IIQ")
BUCKET_HEADER = struct.Struct("<QQ")
# magic, version, page size, flags, root (page id, sequence), freelist, pgid, txid
META_BODY = struct.Struct("<IIIIQQQQQ")

# bbolt keeps a bucket inline only while it stays under a quarter page.
INLINE_LIMIT = PAGE_SIZE // 4
MAX_PAGE_COUNT_FIELD = 0xFFFF

Tree = Mapping[bytes, Union[bytes, "Tree"]]


def fnv1a_64(data: bytes) -> int:
    """FNV-1a 64: the checksum bbolt keeps in each meta page."""
    value = 0xCBF29CE484222325
    for byte in data:
        value ^= byte
        value = (value * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


class _Pages:
    """Page ids handed out in order; each page's bytes padded to whole pages."""

    def __init__(self, first_free: int) -> None:
        self.next_id = first_free
        self.written: dict[int, bytes] = {}

    def add(self, flags: int, count: int, body: bytes) -> int:
        page_id = self.next_id
        total = PAGE_HEADER.size + len(body)
        span = max(1, -(-total // PAGE_SIZE))
        if count > MAX_PAGE_COUNT_FIELD:
            raise ValueError(f"a page cannot hold {count} elements")
        header = PAGE_HEADER.pack(page_id, flags, count, span - 1)
        self.written[page_id] = (header + body).ljust(span * PAGE_SIZE, b"\0")
        self.next_id += span
        return page_id


def _leaf_body(items: list[tuple[bytes, int, bytes]]) -> bytes:
    headers = bytearray()
    data = bytearray()
    data_start = LEAF_ELEMENT.size * len(items)
    for index, (key, flags, value) in enumerate(items):
        pos = data_start + len(data) - index * LEAF_ELEMENT.size
        headers += LEAF_ELEMENT.pack(flags, pos, len(key), len(value))
        data += key + value
    return bytes(headers + data)


def _branch_body(children: list[tuple[bytes, int]]) -> bytes:
    headers = bytearray()
    data = bytearray()
    data_start = BRANCH_ELEMENT.size * len(children)
    for index, (key, page_id) in enumerate(children):
        pos = data_start + len(data) - index * BRANCH_ELEMENT.size
        headers += BRANCH_ELEMENT.pack(pos, len(key), page_id)
        data += key
    return bytes(headers + data)


def _chunks(sizes: list[int]) -> list[tuple[int, int]]:
    """Split elements into runs that each fit one page (a lone oversized element overflows)."""
    runs: list[tuple[int, int]] = []
    start, used = 0, PAGE_HEADER.size
    for index, size in enumerate(sizes):
        if index > start and used + size > PAGE_SIZE:
            runs.append((start, index))
            start, used = index, PAGE_HEADER.size
        used += size
    runs.append((start, len(sizes)))
    return runs


def _write_pages(items: list[tuple[bytes, int, bytes]], pages: _Pages) -> int:
    """Leaf pages for `items`, then branch levels up to one root; returns the root page id."""
    sizes = [LEAF_ELEMENT.size + len(key) + len(value) for key, _, value in items]
    level: list[tuple[bytes, int]] = []
    for start, end in _chunks(sizes):
        run = items[start:end]
        page_id = pages.add(LEAF_PAGE, len(run), _leaf_body(run))
        level.append((run[0][0] if run else b"", page_id))
    while len(level) > 1:
        sizes = [BRANCH_ELEMENT.size + len(key) for key, _ in level]
        upper: list[tuple[bytes, int]] = []
        for start, end in _chunks(sizes):
            run = level[start:end]
            upper.append((run[0][0], pages.add(BRANCH_PAGE, len(run), _branch_body(run))))
        level = upper
    return level[0][1]


def _bucket_items(tree: Tree, pages: _Pages) -> list[tuple[bytes, int, bytes]]:
    items: list[tuple[bytes, int, bytes]] = []
    for key in sorted(tree):
        if not key:
            raise ValueError("bbolt keys cannot be empty")
        value = tree[key]
        if isinstance(value, bytes):
            items.append((key, 0, value))
        else:
            items.append((key, BUCKET_LEAF_FLAG, _bucket_value(value, pages)))
    return items


def _bucket_value(tree: Tree, pages: _Pages) -> bytes:
    """The value that stores bucket `tree` in its parent: inline when small and flat."""
    items = _bucket_items(tree, pages)
    flat = all(flags == 0 for _, flags, _ in items)
    inline_page = PAGE_HEADER.pack(0, LEAF_PAGE, len(items), 0) + _leaf_body(items)
    if flat and BUCKET_HEADER.size + len(inline_page) <= INLINE_LIMIT:
        return BUCKET_HEADER.pack(0, 0) + inline_page
    return BUCKET_HEADER.pack(_write_pages(items, pages), 0)


def _meta_page(page_id: int, root: int, freelist: int, high_water: int, txid: int) -> bytes:
    body = META_BODY.pack(MAGIC, FORMAT_VERSION, PAGE_SIZE, 0, root, 0, freelist, high_water, txid)
    meta = body + struct.pack("<Q", fnv1a_64(body))
    header = PAGE_HEADER.pack(page_id, META_PAGE, 0, 0)
    return (header + meta).ljust(PAGE_SIZE, b"\0")


def write_bbolt(path: Path, tree: Tree) -> Path:
    """Write `tree` (top-level buckets) as a bbolt database file at `path`.

    Every top-level value must be a bucket, as bbolt requires.
    Raises ValueError on an empty key or a top-level plain value.
    """
    if any(isinstance(value, bytes) for value in tree.values()):
        raise ValueError("top-level entries of a bbolt file must be buckets")
    freelist_id = 2
    pages = _Pages(first_free=3)
    root = _write_pages(_bucket_items(tree, pages), pages)
    high_water = pages.next_id
    content = bytearray()
    # bbolt puts a transaction's meta in page `txid % 2`; both pages hold this state.
    content += _meta_page(0, root, freelist_id, high_water, txid=2)
    content += _meta_page(1, root, freelist_id, high_water, txid=3)
    content += PAGE_HEADER.pack(freelist_id, FREELIST_PAGE, 0, 0).ljust(PAGE_SIZE, b"\0")
    for page_id in sorted(pages.written):
        assert len(content) == page_id * PAGE_SIZE
        content += pages.written[page_id]
    path.write_bytes(bytes(content))
    return path
