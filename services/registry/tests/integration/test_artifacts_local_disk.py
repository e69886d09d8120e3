"""What only `LocalDiskArtifactStore` does: its signed URLs and their HTTP routes."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from fastapi import FastAPI
from mlplane_registry.artifacts import (
    ArtifactMismatch,
    ArtifactNotFound,
    InvalidUpload,
    UploadExpired,
)
from mlplane_registry.artifacts.local_disk import LocalDiskArtifactStore
from mlplane_registry.artifacts.local_http import build_router
from mlplane_runtime.problem import install_problem_handlers

BASE_URL = "http://registry.test/registry"
DATA = b"model weights" * 1000
SHA256 = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> LocalDiskArtifactStore:
    return LocalDiskArtifactStore(tmp_path / "artifacts", base_url=BASE_URL)


@pytest.fixture
async def http(store: LocalDiskArtifactStore) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(build_router(store), prefix="/registry")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        yield client


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


async def stored(store: LocalDiskArtifactStore, http: httpx.AsyncClient, key: str) -> None:
    plan = await store.start_upload(key, len(DATA), SHA256)
    response = await http.put(plan.parts[0].url, content=DATA)
    await store.complete_upload(plan, [(1, response.headers["etag"])])


class TestSignedUrls:
    async def test_a_tampered_signature_is_403_problem_json(
        self, store: LocalDiskArtifactStore, http: httpx.AsyncClient
    ) -> None:
        plan = await store.start_upload("m/1/model.bin", len(DATA), SHA256)

        response = await http.put(with_query(plan.parts[0].url, signature="0" * 64), content=DATA)

        assert response.status_code == 403
        assert response.headers["content-type"].startswith("application/problem+json")

    async def test_an_expired_url_is_refused(
        self, store: LocalDiskArtifactStore, http: httpx.AsyncClient
    ) -> None:
        await stored(store, http, "m/1/model.bin")
        url = await store.download_url("m/1/model.bin", expires_s=-1)

        response = await http.get(url)

        assert response.status_code == 403
        assert "expired" in response.json()["detail"]

    async def test_a_part_url_cannot_be_reused_for_another_part(
        self, store: LocalDiskArtifactStore, http: httpx.AsyncClient
    ) -> None:
        plan = await store.start_upload("m/1/model.bin", len(DATA), SHA256)
        other_part = plan.parts[0].url.replace("/parts/1?", "/parts/2?")

        response = await http.put(other_part, content=DATA)

        assert response.status_code == 403

    async def test_a_download_url_works_for_a_new_store_on_the_same_root(
        self, store: LocalDiskArtifactStore, http: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        await stored(store, http, "m/1/model.bin")
        url = await store.download_url("m/1/model.bin")
        restarted = LocalDiskArtifactStore(tmp_path / "artifacts", base_url=BASE_URL)

        restarted.check_signature(
            "GET",
            urlsplit(url).path.removeprefix("/registry"),
            int(parse_qs(urlsplit(url).query)["expires"][0]),
            parse_qs(urlsplit(url).query)["signature"][0],
        )
        response = await http.get(url)
        assert response.content == DATA


class TestFiles:
    async def test_artifacts_live_under_objects_with_a_file_uri(
        self, store: LocalDiskArtifactStore, http: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        await stored(store, http, "team/m/1/model.bin")

        path = tmp_path / "artifacts" / "objects" / "team" / "m" / "1" / "model.bin"
        assert path.read_bytes() == DATA
        assert store.uri("team/m/1/model.bin") == path.resolve().as_uri()

    async def test_completed_upload_leaves_no_part_files(
        self, store: LocalDiskArtifactStore, http: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        await stored(store, http, "m/1/model.bin")

        leftovers = list((tmp_path / "artifacts" / "uploads").rglob("*part-*"))
        assert leftovers == []

    async def test_a_part_for_an_unknown_upload_is_404(
        self, store: LocalDiskArtifactStore, http: httpx.AsyncClient
    ) -> None:
        plan = await store.start_upload("m/1/model.bin", len(DATA), SHA256)
        await store.abort_upload(plan)

        response = await http.put(plan.parts[0].url, content=DATA)

        assert response.status_code == 404


class TestConcurrentCompletion:
    async def test_two_concurrent_completions_both_return_the_verified_artifact(
        self, store: LocalDiskArtifactStore, http: httpx.AsyncClient
    ) -> None:
        plan = await store.start_upload("m/1/model.bin", len(DATA), SHA256)
        response = await http.put(plan.parts[0].url, content=DATA)
        parts = [(1, response.headers["etag"])]

        first, second = await asyncio.gather(
            store.complete_upload(plan, parts), store.complete_upload(plan, parts)
        )

        assert first == second
        assert first.sha256 == SHA256


class TestKeys:
    async def test_keys_with_reserved_url_characters_round_trip(
        self, store: LocalDiskArtifactStore, http: httpx.AsyncClient
    ) -> None:
        key = "team=a/m+1/v@2,x.bin"
        await stored(store, http, key)

        response = await http.get(await store.download_url(key))

        assert response.status_code == 200
        assert response.content == DATA


class TestOversizedParts:
    async def test_a_part_carrying_more_bytes_than_planned_is_refused_with_413(
        self, store: LocalDiskArtifactStore, http: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        plan = await store.start_upload("m/1/model.bin", len(DATA), SHA256)

        response = await http.put(plan.parts[0].url, content=DATA + b"x" * (4 * 1024 * 1024))

        assert response.status_code == 413
        assert response.headers["content-type"].startswith("application/problem+json")
        upload_dir = tmp_path / "artifacts" / "uploads" / plan.upload_id
        assert [p.name for p in upload_dir.iterdir()] == ["upload.json"]

    async def test_a_short_part_is_still_refused_at_completion(
        self, store: LocalDiskArtifactStore, http: httpx.AsyncClient
    ) -> None:
        plan = await store.start_upload("m/1/model.bin", len(DATA), SHA256)
        response = await http.put(plan.parts[0].url, content=DATA[:-1])
        assert response.status_code == 200

        with pytest.raises(ArtifactMismatch):
            await store.complete_upload(plan, [(1, response.headers["etag"])])


class TestMalformedSignatures:
    @pytest.mark.parametrize("signature", ["é" * 64, "\u2603", "", "0" * 1000, "zz"])
    async def test_a_non_ascii_or_malformed_signature_is_403_problem_json(
        self, store: LocalDiskArtifactStore, http: httpx.AsyncClient, signature: str
    ) -> None:
        plan = await store.start_upload("m/1/model.bin", len(DATA), SHA256)

        response = await http.put(with_query(plan.parts[0].url, signature=signature), content=DATA)

        assert response.status_code == 403
        assert response.headers["content-type"].startswith("application/problem+json")


class TestConfinement:
    async def test_a_key_leading_out_of_the_store_through_a_symlink_names_no_artifact(
        self, store: LocalDiskArtifactStore, http: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        await stored(store, http, "m/1/model.bin")
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret").write_text("not an artifact")
        (tmp_path / "artifacts" / "objects" / "m" / "escape").symlink_to(outside)

        with pytest.raises(ArtifactNotFound):
            store.object_file("m/escape/secret")
        with pytest.raises(ArtifactNotFound):
            await store.download_url("m/escape/secret")

    @pytest.mark.parametrize("key", ["../.signing-key", "m/../../x", ".signing-key", "m/.x"])
    async def test_dot_segments_are_refused(self, store: LocalDiskArtifactStore, key: str) -> None:
        with pytest.raises(InvalidUpload):
            store.object_file(key)

    async def test_the_signing_key_lives_beside_the_store_not_inside_it(
        self, store: LocalDiskArtifactStore, tmp_path: Path
    ) -> None:
        await store.start_upload("m/1/model.bin", len(DATA), SHA256)

        assert (tmp_path / "artifacts.signing-key").is_file()
        assert not list((tmp_path / "artifacts").rglob("*signing*"))

    async def test_a_signing_key_kept_inside_the_store_is_moved_out_and_still_used(
        self, tmp_path: Path
    ) -> None:
        old = tmp_path / "artifacts" / ".signing-key"
        old.parent.mkdir()
        old.write_text("11" * 32)

        store = LocalDiskArtifactStore(tmp_path / "artifacts", base_url=BASE_URL)
        plan = await store.start_upload("m/1/model.bin", len(DATA), SHA256)

        assert not old.exists()
        assert (tmp_path / "artifacts.signing-key").read_text() == "11" * 32
        query = parse_qs(urlsplit(plan.parts[0].url).query)
        expected = LocalDiskArtifactStore(tmp_path / "x", signing_key=bytes.fromhex("11" * 32))
        path = store.part_path(plan.upload_id, 1)
        expected.check_signature("PUT", path, int(query["expires"][0]), query["signature"][0])


def backdate(tmp_path: Path, upload_id: str, seconds: float) -> None:
    manifest_file = tmp_path / "artifacts" / "uploads" / upload_id / "upload.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["started_at"] -= seconds
    manifest_file.write_text(json.dumps(manifest))


class TestExpiry:
    async def test_an_upload_older_than_the_expiry_is_refused_at_completion_and_dropped(
        self, store: LocalDiskArtifactStore, http: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        plan = await store.start_upload("m/1/model.bin", len(DATA), SHA256)
        response = await http.put(plan.parts[0].url, content=DATA)
        backdate(tmp_path, plan.upload_id, store.upload_expiry_s + 1)

        with pytest.raises(UploadExpired):
            await store.complete_upload(plan, [(1, response.headers["etag"])])

        assert not (tmp_path / "artifacts" / "uploads" / plan.upload_id).exists()
        with pytest.raises(ArtifactNotFound):
            store.object_file("m/1/model.bin")

    async def test_the_sweep_drops_expired_uploads_and_keeps_the_others(
        self, store: LocalDiskArtifactStore, http: httpx.AsyncClient, tmp_path: Path
    ) -> None:
        abandoned = await store.start_upload("m/1/model.bin", len(DATA), SHA256)
        await http.put(abandoned.parts[0].url, content=DATA)
        backdate(tmp_path, abandoned.upload_id, store.upload_expiry_s + 1)
        fresh = await store.start_upload("m/2/model.bin", len(DATA), SHA256)

        assert await store.sweep_expired_uploads() == 1

        uploads = tmp_path / "artifacts" / "uploads"
        assert not (uploads / abandoned.upload_id).exists()
        assert (uploads / fresh.upload_id).exists()
