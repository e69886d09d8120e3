"""Manifests on the real registry: OCI manifests and indexes, Docker schema 2, errors."""

from __future__ import annotations

import json
import os

import pytest
from mlplane_oci import (
    DigestMismatch,
    ManifestNotFound,
    OciClient,
    RegistryCallFailed,
    media_types,
)
from mlplane_testing.oci_registry import OciRegistryEndpoint

from .conftest import FAST_RETRY
from .servers import RegistryProxy, serve


def encode(document: dict[str, object]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


async def push_image(
    client: OciClient,
    repository: str,
    *,
    manifest_type: str = media_types.OCI_MANIFEST,
    config_type: str = media_types.OCI_CONFIG,
    layer_type: str = media_types.OCI_LAYER_GZIP,
) -> bytes:
    """Push a config and a layer; the manifest (bytes) that refers to them."""
    config = encode({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}})
    layer = os.urandom(4096)
    config_digest = await client.push_blob(repository, config)
    layer_digest = await client.push_blob(repository, layer)
    return encode(
        {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": layer_type, "digest": layer_digest, "size": len(layer)}],
        }
    )


class TestOciManifest:
    async def test_put_then_get_by_tag_and_by_digest_gives_the_same_bytes(
        self, client: OciClient, repository: str
    ) -> None:
        content = await push_image(client, repository)
        digest = await client.put_manifest(repository, "1.0", content, media_types.OCI_MANIFEST)
        for reference in ("1.0", digest):
            manifest = await client.get_manifest(repository, reference)
            assert manifest.content == content
            assert manifest.digest == digest
            assert manifest.media_type == media_types.OCI_MANIFEST
            assert not manifest.is_index
        assert await client.manifest_digest(repository, "1.0") == digest

    async def test_an_index_of_manifests(self, client: OciClient, repository: str) -> None:
        content = await push_image(client, repository)
        image = await client.put_manifest(repository, "amd64", content, media_types.OCI_MANIFEST)
        index = encode(
            {
                "schemaVersion": 2,
                "mediaType": media_types.OCI_INDEX,
                "manifests": [
                    {
                        "mediaType": media_types.OCI_MANIFEST,
                        "digest": image,
                        "size": len(content),
                        "platform": {"architecture": "amd64", "os": "linux"},
                    }
                ],
            }
        )
        digest = await client.put_manifest(repository, "1.0", index, media_types.OCI_INDEX)
        manifest = await client.get_manifest(repository, "1.0")
        assert (manifest.media_type, manifest.digest, manifest.is_index) == (
            media_types.OCI_INDEX,
            digest,
            True,
        )
        assert manifest.json()["manifests"][0]["digest"] == image

    async def test_docker_schema_2_manifest_is_readable(
        self, client: OciClient, repository: str
    ) -> None:
        content = await push_image(
            client,
            repository,
            manifest_type=media_types.DOCKER_MANIFEST,
            config_type=media_types.DOCKER_CONFIG,
            layer_type=media_types.DOCKER_LAYER_GZIP,
        )
        digest = await client.put_manifest(repository, "v1", content, media_types.DOCKER_MANIFEST)
        manifest = await client.get_manifest(repository, "v1")
        assert (manifest.media_type, manifest.digest) == (media_types.DOCKER_MANIFEST, digest)
        assert manifest.content == content


class TestManifestErrors:
    async def test_missing_manifest_names_the_call(
        self, client: OciClient, repository: str
    ) -> None:
        assert await client.manifest_digest(repository, "nope") is None
        with pytest.raises(ManifestNotFound) as caught:
            await client.get_manifest(repository, "nope")
        host = client.base_url.split("://", 1)[1]
        assert str(caught.value).startswith(f"GET {host}/v2/{repository}/manifests/nope: 404 ")

    async def test_manifest_referring_to_a_missing_blob_is_refused_with_the_registrys_reason(
        self, client: OciClient, repository: str
    ) -> None:
        content = await push_image(client, repository)
        document = json.loads(content)
        missing = "sha256:" + "0" * 64
        document["layers"][0]["digest"] = missing
        with pytest.raises(RegistryCallFailed) as caught:
            await client.put_manifest(repository, "1", encode(document), media_types.OCI_MANIFEST)
        host = client.base_url.split("://", 1)[1]
        assert str(caught.value).startswith(
            f"PUT {host}/v2/{repository}/manifests/1: 400 MANIFEST_BLOB_UNKNOWN: "
        )
        assert missing in str(caught.value)
        assert caught.value.http_status == 400

    async def test_put_under_a_digest_that_is_not_the_contents_is_refused_before_sending(
        self, client: OciClient, repository: str
    ) -> None:
        content = await push_image(client, repository)
        client.stats.reset()
        with pytest.raises(DigestMismatch):
            await client.put_manifest(
                repository, "sha256:" + "1" * 64, content, media_types.OCI_MANIFEST
            )
        assert client.stats.total("manifest") == 0

    async def test_manifest_bytes_not_matching_the_digest_asked_for_are_refused(
        self, oci_registry: OciRegistryEndpoint, repository: str
    ) -> None:
        proxy = RegistryProxy(oci_registry.url, corrupt=lambda r: "/manifests/" in r.url.path)
        with serve(proxy) as url:
            async with OciClient(url, retry=FAST_RETRY) as client:
                content = await push_image(client, repository)
                digest = await client.put_manifest(
                    repository, "1", content, media_types.OCI_MANIFEST
                )
                for reference in (digest, "1"):  # by tag: checked against Docker-Content-Digest
                    with pytest.raises(DigestMismatch):
                        await client.get_manifest(repository, reference)
