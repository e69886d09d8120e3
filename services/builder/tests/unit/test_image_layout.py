"""OciLayout: an OCI image layout directory that real tools (Trivy) read."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mlplane_builder.image.config import derive_config
from mlplane_builder.image.errors import (
    CorruptLayout,
    InvalidManifest,
    InvalidRefName,
    LayoutBlobMissing,
)
from mlplane_builder.image.layer import LayerFile, LayerStream
from mlplane_builder.image.layout import REF_NAME, OciLayout
from mlplane_builder.image.manifest import Descriptor, digest_of, image_manifest
from mlplane_oci.media_types import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST

MiB = 2**20
_VENV_TRIVY = Path(__file__).resolve().parents[4] / ".venv" / "bin" / "trivy"
TRIVY = _VENV_TRIVY if _VENV_TRIVY.exists() else Path(shutil.which("trivy") or _VENV_TRIVY)
# A made-up credential in the shape Trivy's AWS rules look for.
AWS_CREDENTIALS = (
    b"[default]\n"
    b"aws_access_key_id = AKIA2E0A8F3B244C9986\n"
    b"aws_secret_access_key = 9jJ0Rq0nQkK3sVh+Lx2mB6pXyZ8uT4wE1cD7fG5h\n"
)


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if p.name.startswith(".oci-partial-")]


async def store_image(layout: OciLayout, path: str, content: bytes, ref_name: str) -> str:
    """A scratch image with one layer holding `content` at `path`, named `ref_name`."""
    stream = LayerStream(LayerFile(path, len(content)), chunks_of(content, 1000))
    written = await layout.write_blob_stream(stream)
    built = stream.result
    assert written == (built.digest, built.size)
    config = derive_config(
        None, diff_id=built.diff_id, env={}, labels={}, history_comment=f"{path} added"
    )
    config_digest = await layout.write_blob(config)
    manifest = image_manifest(
        Descriptor(OCI_CONFIG, config_digest, len(config)),
        [Descriptor(built.media_type, built.digest, built.size)],
    )
    return await layout.add_manifest(manifest, OCI_MANIFEST, ref_name=ref_name)


class TestCreation:
    def test_a_new_layout_has_its_marker_and_an_empty_index(self, tmp_path: Path) -> None:
        OciLayout(tmp_path / "layout")
        root = tmp_path / "layout"
        assert json.loads((root / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
        index = json.loads((root / "index.json").read_bytes())
        assert index == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        assert (root / "blobs" / "sha256").is_dir()

    async def test_opening_an_existing_layout_keeps_its_images(self, tmp_path: Path) -> None:
        digest = await store_image(OciLayout(tmp_path), "/m/x", b"x", "fraud-3")
        assert OciLayout(tmp_path).refs()["fraud-3"].digest == digest


class TestBlobs:
    async def test_a_blob_is_stored_under_its_digest_once(self, tmp_path: Path) -> None:
        layout = OciLayout(tmp_path)
        digest = await layout.write_blob(b"config")
        assert digest == digest_of(b"config")
        assert await layout.write_blob(b"config") == digest
        assert layout.blob_path(digest).read_bytes() == b"config"
        assert await layout.has_blob(digest)
        assert not await layout.has_blob(digest_of(b"other"))
        assert await layout.read_blob(digest) == b"config"
        assert leftovers(tmp_path) == []

    async def test_a_streamed_blob_has_the_digest_and_size_of_its_bytes(
        self, tmp_path: Path
    ) -> None:
        data = os.urandom(3 * MiB + 1)
        written = await OciLayout(tmp_path).write_blob_stream(chunks_of(data, 65536))
        assert written.digest == "sha256:" + hashlib.sha256(data).hexdigest()
        assert written.size == len(data)
        assert (tmp_path / "blobs" / "sha256" / written.digest[7:]).read_bytes() == data
        assert leftovers(tmp_path) == []

    async def test_a_failing_stream_leaves_no_blob_and_no_partial_file(
        self, tmp_path: Path
    ) -> None:
        async def broken() -> AsyncIterator[bytes]:
            yield b"half"
            raise ConnectionError("storage went away")

        layout = OciLayout(tmp_path)
        with pytest.raises(ConnectionError):
            await layout.write_blob_stream(broken())
        assert leftovers(tmp_path) == []
        assert list((tmp_path / "blobs" / "sha256").iterdir()) == []

    async def test_streaming_64_mib_holds_about_one_chunk(self, tmp_path: Path) -> None:
        block = os.urandom(MiB)

        async def big() -> AsyncIterator[bytes]:
            for _ in range(64):
                yield block

        tracemalloc.start()
        try:
            written = await OciLayout(tmp_path).write_blob_stream(big())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert written.size == 64 * MiB
        assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"

    async def test_a_missing_or_tampered_blob_is_reported(self, tmp_path: Path) -> None:
        layout = OciLayout(tmp_path)
        with pytest.raises(LayoutBlobMissing):
            await layout.read_blob(digest_of(b"never written"))
        digest = await layout.write_blob(b"original")
        layout.blob_path(digest).write_bytes(b"tampered")
        with pytest.raises(CorruptLayout, match="hashes to"):
            await layout.read_blob(digest)

    @pytest.mark.parametrize("digest", ["sha256:../../etc", "sha256:" + "A" * 64, "latest"])
    async def test_a_bad_digest_never_becomes_a_path(self, tmp_path: Path, digest: str) -> None:
        with pytest.raises(InvalidManifest, match="digest"):
            await OciLayout(tmp_path).has_blob(digest)


class TestManifests:
    async def test_a_manifest_is_named_in_the_index_and_read_back(self, tmp_path: Path) -> None:
        layout = OciLayout(tmp_path)
        digest = await store_image(layout, "/models/m/1/model.bin", b"weights", "fraud-3")
        index = json.loads((tmp_path / "index.json").read_bytes())
        [entry] = index["manifests"]
        assert entry["digest"] == digest
        assert entry["mediaType"] == OCI_MANIFEST
        assert entry["annotations"] == {REF_NAME: "fraud-3"}
        stored = await layout.read_manifest("fraud-3")
        assert stored is not None
        assert (stored.digest, stored.media_type) == (digest, OCI_MANIFEST)
        assert digest_of(stored.content) == digest
        descriptor, content = stored
        assert (descriptor.size, content) == (len(stored.content), stored.content)

    async def test_an_unknown_ref_name_reads_as_none(self, tmp_path: Path) -> None:
        assert await OciLayout(tmp_path).read_manifest("nope") is None

    async def test_the_same_ref_name_is_replaced_and_others_kept(self, tmp_path: Path) -> None:
        layout = OciLayout(tmp_path)
        await store_image(layout, "/m/x", b"one", "fraud-3")
        other = await store_image(layout, "/m/x", b"other", "churn-1")
        second = await store_image(layout, "/m/x", b"two", "fraud-3")
        assert {ref: d.digest for ref, d in layout.refs().items()} == {
            "fraud-3": second,
            "churn-1": other,
        }

    async def test_concurrent_builds_lose_no_index_entry(self, tmp_path: Path) -> None:
        layouts = [OciLayout(tmp_path), OciLayout(tmp_path)]
        manifests = [
            image_manifest(Descriptor(OCI_CONFIG, digest_of(b"%d" % i), 1), []) for i in range(24)
        ]
        await asyncio.gather(
            *(
                layouts[i % 2].add_manifest(m, OCI_MANIFEST, ref_name=f"model-{i}")
                for i, m in enumerate(manifests)
            )
        )
        assert sorted(layouts[0].refs()) == sorted(f"model-{i}" for i in range(24))
        assert leftovers(tmp_path) == []

    @pytest.mark.parametrize("ref_name", ["", "-lead", "a//b", "trail.", "sp ace", "a/"])
    async def test_a_ref_name_outside_the_grammar_is_refused(
        self, tmp_path: Path, ref_name: str
    ) -> None:
        with pytest.raises(InvalidRefName):
            await OciLayout(tmp_path).add_manifest(b"{}", OCI_MANIFEST, ref_name=ref_name)

    @pytest.mark.parametrize("ref_name", ["fraud-3", "v1.2.3", "ml/fraud:3", "a--b", "x@y+z_1"])
    async def test_ref_names_of_the_grammar_are_accepted(
        self, tmp_path: Path, ref_name: str
    ) -> None:
        layout = OciLayout(tmp_path)
        await layout.add_manifest(b"{}", OCI_MANIFEST, ref_name=ref_name)
        assert ref_name in layout.refs()

    async def test_a_media_type_that_is_no_manifest_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(InvalidManifest, match="media type"):
            await OciLayout(tmp_path).add_manifest(b"{}", OCI_CONFIG, ref_name="x")

    async def test_an_index_entry_without_its_blob_is_reported(self, tmp_path: Path) -> None:
        layout = OciLayout(tmp_path)
        digest = await store_image(layout, "/m/x", b"x", "fraud-3")
        layout.blob_path(digest).unlink()
        with pytest.raises(LayoutBlobMissing):
            await layout.read_manifest("fraud-3")

    async def test_a_damaged_index_is_reported(self, tmp_path: Path) -> None:
        layout = OciLayout(tmp_path)
        (tmp_path / "index.json").write_text('{"manifests": "no"}')
        with pytest.raises(CorruptLayout, match=r"index\.json"):
            await layout.read_manifest("fraud-3")


async def test_trivy_finds_the_secret_in_an_image_we_assembled(tmp_path: Path) -> None:
    layout = OciLayout(tmp_path / "layout")
    await store_image(layout, "/models/fraud/3/credentials", AWS_CREDENTIALS, "fraud-3")
    command = [
        str(TRIVY), "image", "--input", str(tmp_path / "layout"),
        "--scanners", "secret", "--skip-db-update", "--skip-java-db-update", "--offline-scan",
        "--cache-dir", str(tmp_path / "cache"), "--format", "json", "--quiet",
    ]  # fmt: skip
    result = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, timeout=240, check=False
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    report = json.loads(result.stdout)
    found = {
        (finding["RuleID"], target["Target"])
        for target in report.get("Results", [])
        for finding in target.get("Secrets", [])
    }
    assert ("aws-access-key-id", "/models/fraud/3/credentials") in found
    assert ("aws-secret-access-key", "/models/fraud/3/credentials") in found
