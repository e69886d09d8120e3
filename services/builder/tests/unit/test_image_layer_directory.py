"""LayerStream over a model directory: several files streamed back to back into one layer."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import AsyncIterator

import pytest
from mlplane_builder.image.errors import LayerSizeMismatch
from mlplane_builder.image.layer import LayerFile, LayerStream
from mlplane_builder.image.tar_entries import tar_prefix, tar_suffix

ROOT = "/models/fraud/1"
FILES = {
    "MLmodel": b"flavors:\n  sklearn: {}\n",
    "conda.yaml": b"name: mlflow-env\n" * 40,
    "empty.txt": b"",
    "metadata/requirements.txt": b"scikit-learn==1.7\n",
    "metadata/sub/x.bin": bytes(range(256)) * 9,
    "model.skops": bytes(1000),
}


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def layer_files(files: dict[str, bytes]) -> list[LayerFile]:
    return [LayerFile(f"{ROOT}/{path}", len(data)) for path, data in sorted(files.items())]


async def build(files: dict[str, bytes], *, piece: int, chunk_size: int = 4096) -> bytes:
    content = b"".join(data for _, data in sorted(files.items()))
    stream = LayerStream(layer_files(files), pieces(content, piece), chunk_size=chunk_size)
    data = b"".join([chunk async for chunk in stream])
    assert stream.result.digest == f"sha256:{hashlib.sha256(data).hexdigest()}"
    return data


def members(layer: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer)), mode="r:") as archive:
        return archive.getmembers()


def contents(layer: bytes) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer)), mode="r:") as archive:
        for member in archive.getmembers():
            handle = archive.extractfile(member) if member.isfile() else None
            if handle is not None:
                found[member.name] = handle.read()
    return found


@pytest.mark.parametrize("piece", [1, 7, 100, 512, 10_000])
async def test_every_file_lands_at_its_path_whatever_the_pieces_cross(piece: int) -> None:
    layer = await build(FILES, piece=piece)
    assert contents(layer) == {f"models/fraud/1/{path}": data for path, data in FILES.items()}


async def test_the_same_directory_gives_the_same_bytes_whatever_the_chunking() -> None:
    assert await build(FILES, piece=3, chunk_size=1000) == await build(
        FILES, piece=4096, chunk_size=64 * 1024
    )


async def test_each_directory_is_written_once_before_its_files() -> None:
    names = [(m.name, m.isdir()) for m in members(await build(FILES, piece=100))]
    directories = [name for name, is_dir in names if is_dir]
    assert directories == [
        "models",
        "models/fraud",
        "models/fraud/1",
        "models/fraud/1/metadata",
        "models/fraud/1/metadata/sub",
    ]
    assert names.index(("models/fraud/1/metadata", True)) < names.index(
        ("models/fraud/1/metadata/requirements.txt", False)
    )


async def test_one_file_gives_the_framing_it_always_had() -> None:
    data = b"weights" * 100
    stream = LayerStream(LayerFile(f"{ROOT}/model.onnx", len(data)), pieces(data, 64))
    layer = b"".join([chunk async for chunk in stream])
    tar = tar_prefix(LayerFile(f"{ROOT}/model.onnx", len(data))) + data + tar_suffix(len(data))
    assert gzip.decompress(layer) == tar
    assert stream.result.diff_id == f"sha256:{hashlib.sha256(tar).hexdigest()}"


async def test_a_source_short_of_the_last_file_is_refused() -> None:
    content = b"".join(data for _, data in sorted(FILES.items()))[:-1]
    stream = LayerStream(layer_files(FILES), pieces(content, 100))
    with pytest.raises(LayerSizeMismatch) as short:
        [chunk async for chunk in stream]
    assert short.value.extensions["path"] == f"{ROOT}/model.skops"


async def test_a_source_past_the_last_file_is_refused() -> None:
    content = b"".join(data for _, data in sorted(FILES.items())) + b"!"
    stream = LayerStream(layer_files(FILES), pieces(content, 100))
    with pytest.raises(LayerSizeMismatch):
        [chunk async for chunk in stream]


async def test_no_files_is_an_empty_archive() -> None:
    stream = LayerStream([], pieces(b"", 1))
    layer = b"".join([chunk async for chunk in stream])
    assert members(layer) == []
