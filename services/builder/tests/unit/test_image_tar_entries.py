"""The tar framing of a one-file layer: fixed metadata, parents first, big sizes in PAX."""

from __future__ import annotations

import io
import tarfile

import pytest
from mlplane_builder.image.errors import InvalidLayerFile
from mlplane_builder.image.tar_entries import BLOCK, LayerFile, tar_prefix, tar_suffix


def archive(file: LayerFile, content: bytes) -> bytes:
    return tar_prefix(file) + content + tar_suffix(file.size)


def members(file: LayerFile, content: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive(file, content))) as tar:
        return tar.getmembers()


class TestEntries:
    def test_parents_come_first_each_once_then_the_file(self) -> None:
        names = [m.name for m in members(LayerFile("/models/fraud/3/model.onnx", 3), b"abc")]
        assert names == ["models", "models/fraud", "models/fraud/3", "models/fraud/3/model.onnx"]

    def test_directory_names_end_with_a_slash_in_the_archive(self) -> None:
        prefix = tar_prefix(LayerFile("/models/m.bin", 0))
        assert prefix[:8] == b"models/\0"

    def test_metadata_is_fixed(self) -> None:
        for m in members(LayerFile("/models/a/m.bin", 2, mode=0o600), b"hi"):
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
            assert m.mode == (0o755 if m.isdir() else 0o600)

    def test_the_file_reads_back(self) -> None:
        file = LayerFile("/m.bin", 700)
        content = bytes(range(256)) * 2 + b"x" * 188
        with tarfile.open(fileobj=io.BytesIO(archive(file, content))) as tar:
            extracted = tar.extractfile("m.bin")
            assert extracted is not None
            assert extracted.read() == content

    def test_a_file_at_the_root_has_no_parent_entries(self) -> None:
        assert [m.name for m in members(LayerFile("/weights", 1), b"w")] == ["weights"]

    def test_the_archive_is_whole_blocks_ending_in_two_zero_blocks(self) -> None:
        data = archive(LayerFile("/m/x", 5), b"12345")
        assert len(data) % BLOCK == 0
        assert data.endswith(bytes(2 * BLOCK))
        assert tar_suffix(512) == bytes(2 * BLOCK)


class TestExtendedHeaders:
    def test_a_file_of_9_gib_gets_its_size_in_a_pax_header(self) -> None:
        size = 9 * 2**30
        prefix = tar_prefix(LayerFile("/models/big.bin", size))
        assert b" size=9663676416\n" in prefix
        # Stream mode reads headers without needing the 9 GiB that would follow.
        with tarfile.open(fileobj=io.BytesIO(prefix), mode="r|") as tar:
            first, second = tar.next(), tar.next()
            assert first is not None
            assert second is not None
            assert (first.name, second.name, second.size) == ("models", "models/big.bin", size)

    def test_small_ascii_entries_need_no_pax_header(self) -> None:
        assert b"PaxHeader" not in tar_prefix(LayerFile("/models/fraud/3/model.onnx", 10))

    @pytest.mark.parametrize(
        "path", ["/models/" + "d" * 120 + "/model.onnx", "/modèles/fraude/modèle.onnx"]
    )
    def test_long_and_non_ascii_paths_round_trip(self, path: str) -> None:
        names = [m.name for m in members(LayerFile(path, 1), b"x")]
        assert names[-1] == path[1:]


class TestValidation:
    @pytest.mark.parametrize(
        "path", ["models/m.bin", "/", "/models/", "//m", "/models/../etc/passwd", "/./m", "/a\0b"]
    )
    def test_a_path_that_is_not_absolute_and_normal_is_refused(self, path: str) -> None:
        with pytest.raises(InvalidLayerFile, match="path"):
            LayerFile(path, 1)

    @pytest.mark.parametrize("size", [-1, True, 1.5])
    def test_a_size_that_is_not_a_count_of_bytes_is_refused(self, size: object) -> None:
        with pytest.raises(InvalidLayerFile, match="size"):
            LayerFile("/m", size)  # type: ignore[arg-type]

    @pytest.mark.parametrize("mode", [-1, 0o10000])
    def test_a_mode_outside_permission_bits_is_refused(self, mode: int) -> None:
        with pytest.raises(InvalidLayerFile, match="mode"):
            LayerFile("/m", 1, mode=mode)
