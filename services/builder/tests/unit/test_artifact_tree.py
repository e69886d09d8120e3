"""A model directory's files, as the builder takes them from a listing and checks them
against what the registry verified: the pure rules, then the checked stream."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest
from mlplane_builder.domain import BuildFailure
from mlplane_builder.domain.artifact_tree import TreeFile, tree_files
from mlplane_builder.model_content import verified_tree
from mlplane_contracts.artifacts import tree_digest

URI = "mlflow-artifacts:///1/models/m-1/artifacts"
FILES = {"MLmodel": b"flavors: {}\n", "conda.yaml": b"name: env\n", "sub/model.skops": b"w" * 999}


def listing(files: dict[str, bytes]) -> list[tuple[str, int]]:
    return [(path, len(data)) for path, data in files.items()]


def total(files: dict[str, bytes]) -> int:
    return sum(map(len, files.values()))


class TestTreeFiles:
    def test_files_come_in_path_order(self) -> None:
        found = tree_files(URI, reversed(listing(FILES)), size=total(FILES), max_files=10)
        assert [f.path for f in found] == ["MLmodel", "conda.yaml", "sub/model.skops"]
        assert found[2] == TreeFile("sub/model.skops", 999)

    @pytest.mark.parametrize(
        "path", ["../etc/passwd", "a/../../b", "./x", "a//b", "a/", "/abs", "%2e%2e/x", "a\\b"]
    )
    def test_a_path_an_image_cannot_hold_as_it_is_is_refused(self, path: str) -> None:
        with pytest.raises(BuildFailure) as refused:
            tree_files(URI, [(path, 1)], size=1, max_files=10)
        assert refused.value.kind.value == "artifact_unreadable"

    def test_a_path_both_file_and_directory_is_refused(self) -> None:
        with pytest.raises(BuildFailure, match="both a file and a directory"):
            tree_files(URI, [("a", 1), ("a-b", 1), ("a/b", 1)], size=3, max_files=10)

    def test_sizes_that_do_not_add_up_are_a_changed_directory(self) -> None:
        with pytest.raises(BuildFailure) as changed:
            tree_files(URI, listing(FILES), size=total(FILES) + 1, max_files=10)
        assert changed.value.kind.value == "artifact_mismatch"
        assert changed.value.can_retry is False

    def test_more_files_than_the_builder_takes_names_the_setting(self) -> None:
        with pytest.raises(BuildFailure, match="MLPLANE_BUILDER_MAX_ARTIFACT_FILES"):
            tree_files(URI, listing(FILES), size=total(FILES), max_files=2)

    def test_an_empty_directory_is_missing(self) -> None:
        with pytest.raises(BuildFailure) as empty:
            tree_files(URI, [], size=0, max_files=2)
        assert empty.value.kind.value == "artifact_missing"

    def test_a_file_the_listing_gives_no_size_is_refused(self) -> None:
        with pytest.raises(BuildFailure, match="no size"):
            tree_files(URI, [("MLmodel", -1), ("x", 2)], size=1, max_files=2)


def registered(files: dict[str, bytes]) -> tuple[int, str]:
    return tree_digest(
        (path, len(data), hashlib.sha256(data).hexdigest()) for path, data in files.items()
    )


async def read(files: dict[str, bytes], served: dict[str, bytes], digest: tuple[int, str]) -> bytes:
    """`verified_tree` over `files`' listing while the server serves `served`."""
    size, sha256 = digest
    tree = tree_files(URI, listing(files), size=total(files), max_files=10)

    async def chunks_of(file: TreeFile) -> AsyncIterator[bytes]:
        data = served[file.path]
        for start in range(0, len(data), 100):
            yield data[start : start + 100]

    stream = verified_tree(URI, tree, chunks_of, size=size, sha256=sha256)
    return b"".join([chunk async for chunk in stream])


class TestVerifiedTree:
    async def test_the_files_stream_in_order_when_they_are_what_was_registered(self) -> None:
        got = await read(FILES, FILES, registered(FILES))
        assert got == b"".join(FILES[path] for path in sorted(FILES))

    async def test_a_file_overwritten_in_place_fails_at_the_end_naming_both_digests(
        self,
    ) -> None:
        changed = {**FILES, "conda.yaml": b"name: ENV\n"}
        with pytest.raises(BuildFailure) as caught:
            await read(FILES, changed, registered(FILES))
        assert caught.value.kind.value == "artifact_mismatch"
        assert registered(FILES)[1] in caught.value.detail
        assert registered(changed)[1] in caught.value.detail

    async def test_a_file_longer_than_listed_stops_the_stream(self) -> None:
        with pytest.raises(BuildFailure, match="more than 12 bytes"):
            await read(FILES, {**FILES, "MLmodel": FILES["MLmodel"] + b"x"}, registered(FILES))

    async def test_a_file_shorter_than_listed_stops_the_stream(self) -> None:
        with pytest.raises(BuildFailure, match="its size is 998 bytes"):
            await read(FILES, {**FILES, "sub/model.skops": b"w" * 998}, registered(FILES))

    async def test_the_registered_size_is_checked_too(self) -> None:
        size, sha256 = registered(FILES)
        with pytest.raises(BuildFailure, match="size"):
            await read(FILES, FILES, (size + 1, sha256))
