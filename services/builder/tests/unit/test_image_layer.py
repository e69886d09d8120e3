"""LayerStream: one reproducible gzip tar layer, hashed while it streams, in constant memory."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import random
import subprocess
import tarfile
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator

import pytest
from mlplane_builder.image import layer as layer_module
from mlplane_builder.image.errors import LayerSizeMismatch
from mlplane_builder.image.gzip_member import GzipMember
from mlplane_builder.image.layer import BuiltLayer, LayerFile, LayerStream
from mlplane_oci.media_types import OCI_LAYER_GZIP

PATH = "/models/fraud/3/model.onnx"
MiB = 2**20


def sample(size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(rng.randint(1, 200)) + b"w" * rng.randint(0, 300)
    return bytes(out[:size])


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def build(
    data: bytes,
    *,
    path: str = PATH,
    mode: int = 0o644,
    level: int = 1,
    piece: int = 100_000,
    chunk_size: int = 4 * MiB,
    exact_chunks: bool = True,
) -> tuple[bytes, BuiltLayer, list[bytes]]:
    stream = LayerStream(
        LayerFile(path, len(data), mode),
        pieces(data, piece),
        compression_level=level,
        chunk_size=chunk_size,
        exact_chunks=exact_chunks,
    )
    chunks = [chunk async for chunk in stream]
    return b"".join(chunks), stream.result, chunks


DATA = sample(5 * MiB + 3, seed=1)


class TestReproducible:
    async def test_building_twice_gives_the_same_digest(self) -> None:
        first, built1, _ = await build(DATA)
        second, built2, _ = await build(DATA)
        assert first == second
        assert built1 == built2

    @pytest.mark.parametrize(
        ("piece", "chunk_size"), [(1, 4 * MiB), (4 * MiB, 65536), (len(DATA), 1000), (77777, MiB)]
    )
    async def test_source_pieces_and_chunk_size_do_not_change_the_bytes(
        self, piece: int, chunk_size: int
    ) -> None:
        reference, _, _ = await build(DATA[: 2 * MiB + 5])
        other, _, _ = await build(DATA[: 2 * MiB + 5], piece=piece, chunk_size=chunk_size)
        assert other == reference

    async def test_different_content_gives_a_different_digest(self) -> None:
        _, built, _ = await build(DATA)
        _, changed, _ = await build(DATA[:-1] + b"!")
        assert changed.digest != built.digest
        assert changed.diff_id != built.diff_id

    @pytest.mark.parametrize(
        "change", [{"path": "/models/fraud/4/model.onnx"}, {"mode": 0o600}, {"level": 2}]
    )
    async def test_path_mode_and_level_are_part_of_the_identity(
        self, change: dict[str, object]
    ) -> None:
        _, built, _ = await build(DATA[:MiB])
        _, changed, _ = await build(DATA[:MiB], **change)  # type: ignore[arg-type]
        assert changed.digest != built.digest

    async def test_known_input_gives_known_digests(self) -> None:
        # Pinned on purpose: a Python (tarfile) or ISA-L upgrade that changes
        # these bytes changes every image digest we build, and must be noticed.
        _, built, _ = await build(b"mlplane\n" * 1000, path="/models/m/1/model.bin")
        assert built.diff_id == (
            "sha256:243f1464da8361f6acc3cf8186564492658c819a64b8272f26b377b639a28e2d"
        )
        assert built.digest == (
            "sha256:e1389ad53427ae97c3141a9aa7138229466cd289a8f724a4579285384a2e2451"
        )


class TestValidLayer:
    async def test_digests_and_sizes_describe_the_emitted_bytes(self) -> None:
        emitted, built, _ = await build(DATA)
        tar = gzip.decompress(emitted)
        assert built.digest == "sha256:" + hashlib.sha256(emitted).hexdigest()
        assert built.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
        assert (built.size, built.uncompressed_size) == (len(emitted), len(tar))
        assert built.media_type == OCI_LAYER_GZIP

    async def test_tarfile_extracts_the_file_with_fixed_metadata(self) -> None:
        emitted, _, _ = await build(DATA, mode=0o640)
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(emitted))) as tar:
            members = tar.getmembers()
            assert [(m.name, m.mode, m.mtime, m.uid, m.gid) for m in members] == [
                ("models", 0o755, 0, 0, 0),
                ("models/fraud", 0o755, 0, 0, 0),
                ("models/fraud/3", 0o755, 0, 0, 0),
                ("models/fraud/3/model.onnx", 0o640, 0, 0, 0),
            ]
            extracted = tar.extractfile("models/fraud/3/model.onnx")
            assert extracted is not None
            assert extracted.read() == DATA

    async def test_gzip_tool_accepts_the_layer(self) -> None:
        emitted, _, _ = await build(DATA)
        result = await asyncio.to_thread(
            subprocess.run, ["gzip", "-t"], input=emitted, capture_output=True, check=False
        )
        assert result.returncode == 0, result.stderr

    async def test_an_empty_file_makes_a_valid_layer(self) -> None:
        emitted, built, _ = await build(b"")
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(emitted))) as tar:
            assert tar.getmember("models/fraud/3/model.onnx").size == 0
        assert built.size == len(emitted)

    async def test_chunks_are_exactly_chunk_size_but_the_last(self) -> None:
        _, _, chunks = await build(DATA, chunk_size=MiB)
        assert len(chunks) > 2
        assert {len(chunk) for chunk in chunks[:-1]} == {MiB}
        assert 0 < len(chunks[-1]) <= MiB

    async def test_without_exact_chunks_the_same_bytes_come_in_the_compressors_pieces(
        self,
    ) -> None:
        exact, built, _ = await build(DATA, chunk_size=MiB)
        loose, loose_built, chunks = await build(DATA, chunk_size=MiB, exact_chunks=False)
        assert (loose, loose_built) == (exact, built)
        # The gzip header, then a feed block's deflate output each: not re-cut.
        assert len(chunks[0]) == 10
        assert {len(chunk) for chunk in chunks[1:-1]} != {MiB}


class TestSizeMismatch:
    async def test_a_short_source_fails_with_both_sizes(self) -> None:
        stream = LayerStream(LayerFile(PATH, 1000), pieces(b"x" * 999, 100))
        with pytest.raises(LayerSizeMismatch, match=r"declared 1000 bytes .* streamed 999"):
            async for _ in stream:
                pass

    async def test_a_long_source_fails_at_the_first_extra_byte(self) -> None:
        pulled = 0

        async def endless() -> AsyncIterator[bytes]:
            nonlocal pulled
            for _ in range(10_000):
                pulled += 1
                yield b"y" * 1000

        stream = LayerStream(LayerFile(PATH, 5500), endless())
        with pytest.raises(LayerSizeMismatch, match="more than 5500") as raised:
            async for _ in stream:
                pass
        assert pulled == 6
        assert raised.value.extensions["declared"] == 5500
        assert not raised.value.retryable

    async def test_no_result_after_a_failed_stream(self) -> None:
        stream = LayerStream(LayerFile(PATH, 10), pieces(b"z", 1))
        with pytest.raises(LayerSizeMismatch):
            async for _ in stream:
                pass
        with pytest.raises(RuntimeError):
            _ = stream.result


class TestUse:
    async def test_the_result_is_refused_before_the_stream_ends(self) -> None:
        stream = LayerStream(LayerFile(PATH, len(DATA)), pieces(DATA, MiB), chunk_size=MiB)
        iterator = aiter(stream)
        await anext(iterator)
        with pytest.raises(RuntimeError, match="read to the end"):
            _ = stream.result
        await iterator.aclose()  # type: ignore[attr-defined]

    async def test_a_stream_is_iterated_once(self) -> None:
        stream = LayerStream(LayerFile(PATH, 1), pieces(b"a", 1))
        async for _ in stream:
            pass
        with pytest.raises(RuntimeError, match="once"):
            aiter(stream)

    @pytest.mark.parametrize("level", [-1, 4])
    def test_a_bad_level_is_refused_up_front(self, level: int) -> None:
        with pytest.raises(ValueError, match="level"):
            LayerStream(LayerFile(PATH, 1), pieces(b"a", 1), compression_level=level)

    def test_a_chunk_size_below_one_is_refused(self) -> None:
        with pytest.raises(ValueError, match="chunk_size"):
            LayerStream(LayerFile(PATH, 1), pieces(b"a", 1), chunk_size=0)


class TestResources:
    async def test_compression_and_hashing_run_off_the_event_loop(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        loop_thread = threading.get_ident()
        seen: list[tuple[str, int]] = []
        compress, finish, update_both = (
            GzipMember.compress,
            GzipMember.finish,
            layer_module._update_both,
        )

        def spy(name: str, function):  # type: ignore[no-untyped-def]
            def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
                seen.append((name, threading.get_ident()))
                return function(*args, **kwargs)

            return wrapper

        monkeypatch.setattr(GzipMember, "compress", spy("compress", compress))
        monkeypatch.setattr(GzipMember, "finish", spy("finish", finish))
        monkeypatch.setattr(layer_module, "_update_both", spy("hash", update_both))
        await build(DATA, chunk_size=MiB)
        assert {name for name, _ in seen} == {"compress", "finish", "hash"}
        assert all(thread != loop_thread for _, thread in seen)

    async def test_256_mib_stream_in_bounded_memory(self) -> None:
        total = 256 * MiB
        block = random.Random(3).randbytes(MiB)

        async def weights() -> AsyncIterator[bytes]:
            for _ in range(total // MiB):
                yield block

        stream = LayerStream(LayerFile(PATH, total), weights())
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            emitted = 0
            async for chunk in stream:
                emitted += len(chunk)
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        assert emitted == stream.result.size
        assert stream.result.uncompressed_size > total
        # Some four to eight 4 MiB chunks in flight, whatever the total.
        assert peak < 64 * MiB, f"peak {peak / MiB:.1f} MiB"


async def test_closing_the_stream_early_waits_for_its_worker_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_flight = 0
    compress = GzipMember.compress

    def slow_compress(self: GzipMember, data: bytes) -> list[bytes]:
        nonlocal in_flight
        in_flight += 1
        try:
            time.sleep(0.2)
            return compress(self, data)
        finally:
            in_flight -= 1

    monkeypatch.setattr(GzipMember, "compress", slow_compress)
    stream = LayerStream(LayerFile(PATH, len(DATA)), pieces(DATA, MiB), chunk_size=MiB)
    iterator = aiter(stream)
    await anext(iterator)  # the next chunk's compression is under way now
    await iterator.aclose()  # type: ignore[attr-defined]
    assert in_flight == 0


async def test_the_source_is_closed_when_the_stream_is_closed_early() -> None:
    closed = asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        try:
            for start in range(0, len(DATA), MiB):
                yield DATA[start : start + MiB]
        finally:
            closed.set()

    stream = LayerStream(LayerFile(PATH, len(DATA)), source(), chunk_size=MiB)
    iterator = aiter(stream)
    await anext(iterator)
    assert not closed.is_set()
    await iterator.aclose()  # type: ignore[attr-defined]
    assert closed.is_set()


async def test_the_source_is_closed_when_it_streams_too_much() -> None:
    closed = asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        try:
            for _ in range(100):
                yield b"q" * 100
        finally:
            closed.set()

    with pytest.raises(LayerSizeMismatch):
        async for _ in LayerStream(LayerFile(PATH, 150), source()):
            pass
    assert closed.is_set()
