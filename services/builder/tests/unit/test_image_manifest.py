"""Descriptors, manifests and indexes: canonical when written, strict but tolerant when read."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from mlplane_builder.image.errors import InvalidManifest, PlatformNotFound
from mlplane_builder.image.manifest import (
    Descriptor,
    digest_of,
    image_manifest,
    parse_image_manifest,
    select_platform,
)
from mlplane_oci.media_types import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
)


def digest(char: str) -> str:
    return "sha256:" + char * 64


CONFIG = Descriptor(OCI_CONFIG, digest("c"), 1234)
LAYERS = (Descriptor(OCI_LAYER_GZIP, digest("1"), 100), Descriptor(OCI_LAYER_GZIP, digest("2"), 7))


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


class TestDigestOf:
    def test_is_the_sha256_of_the_bytes(self) -> None:
        assert digest_of(b"abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()


class TestDescriptor:
    def test_round_trips_through_json(self) -> None:
        descriptor = Descriptor(OCI_LAYER_GZIP, digest("d"), 9, {"k": "v"})
        assert Descriptor.from_json(descriptor.to_json()) == descriptor

    def test_no_annotations_means_no_field(self) -> None:
        assert "annotations" not in Descriptor(OCI_CONFIG, digest("d"), 1).to_json()

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ([], "object"),
            ({"digest": digest("d"), "size": 1}, "mediaType"),
            ({"mediaType": OCI_CONFIG, "digest": "sha256:xyz", "size": 1}, "digest"),
            ({"mediaType": OCI_CONFIG, "digest": "md5:" + "a" * 32, "size": 1}, "digest"),
            ({"mediaType": OCI_CONFIG, "digest": digest("d"), "size": -1}, "size"),
            ({"mediaType": OCI_CONFIG, "digest": digest("d"), "size": "1"}, "size"),
            ({"mediaType": OCI_CONFIG, "digest": digest("d"), "size": True}, "size"),
            (
                {
                    "mediaType": OCI_CONFIG,
                    "digest": digest("d"),
                    "size": 1,
                    "annotations": {"a": 1},
                },
                "annotations",
            ),
        ],
    )
    def test_a_bad_field_is_named(self, document: object, message: str) -> None:
        with pytest.raises(InvalidManifest, match=message):
            Descriptor.from_json(document)

    def test_sha512_digests_are_accepted(self) -> None:
        document = {"mediaType": OCI_CONFIG, "digest": "sha512:" + "e" * 128, "size": 1}
        assert Descriptor.from_json(document).digest.startswith("sha512:")


class TestImageManifest:
    def test_is_a_schema_2_oci_manifest_in_canonical_json(self) -> None:
        raw = image_manifest(CONFIG, LAYERS, {"org.opencontainers.image.created": "1970"})
        document = json.loads(raw)
        assert (document["schemaVersion"], document["mediaType"]) == (2, OCI_MANIFEST)
        assert document["config"] == CONFIG.to_json()
        assert document["layers"] == [layer.to_json() for layer in LAYERS]
        assert raw == json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    def test_parses_back_to_what_it_was_built_from(self) -> None:
        parsed = parse_image_manifest(image_manifest(CONFIG, LAYERS), OCI_MANIFEST)
        assert (parsed.config, parsed.layers) == (CONFIG, LAYERS)

    def test_no_annotations_means_no_field(self) -> None:
        assert "annotations" not in json.loads(image_manifest(CONFIG, LAYERS))


class TestParse:
    def test_docker_schema_2_keeps_its_media_types(self) -> None:
        content = encode(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {"mediaType": DOCKER_CONFIG, "digest": digest("c"), "size": 5},
                "layers": [{"mediaType": DOCKER_LAYER_GZIP, "digest": digest("1"), "size": 6}],
            }
        )
        parsed = parse_image_manifest(content, DOCKER_MANIFEST)
        assert parsed.config.media_type == DOCKER_CONFIG
        assert [layer.media_type for layer in parsed.layers] == [DOCKER_LAYER_GZIP]

    def test_an_oci_manifest_may_leave_out_its_media_type(self) -> None:
        document = json.loads(image_manifest(CONFIG, LAYERS))
        del document["mediaType"]
        assert parse_image_manifest(encode(document), OCI_MANIFEST).layers == LAYERS

    @pytest.mark.parametrize(
        ("content", "media_type", "message"),
        [
            (b"{}", OCI_INDEX, "index"),
            (b"{}", "application/json", "unsupported"),
            (b"not json", OCI_MANIFEST, "not JSON"),
            (b"[1]", OCI_MANIFEST, "JSON object"),
            (b'{"schemaVersion": 1}', OCI_MANIFEST, "schemaVersion"),
            (b'{"schemaVersion": 2, "mediaType": "x"}', OCI_MANIFEST, "served as"),
            (b'{"schemaVersion": 2}', DOCKER_MANIFEST, "mediaType"),
            (b'{"schemaVersion": 2, "config": {}}', OCI_MANIFEST, "layers"),
        ],
    )
    def test_what_is_wrong_is_said(self, content: bytes, media_type: str, message: str) -> None:
        with pytest.raises(InvalidManifest, match=message):
            parse_image_manifest(content, media_type)


def entry(os: str, architecture: str, char: str, **extra: Any) -> dict[str, Any]:
    platform = {"os": os, "architecture": architecture}
    platform.update(extra.pop("platform", {}))
    return {
        "mediaType": extra.pop("mediaType", OCI_MANIFEST),
        "digest": digest(char),
        "size": 500,
        "platform": platform,
        **extra,
    }


def index(*entries: dict[str, Any], media_type: str = OCI_INDEX) -> bytes:
    return encode({"schemaVersion": 2, "mediaType": media_type, "manifests": list(entries)})


class TestSelectPlatform:
    def test_picks_linux_amd64_by_default(self) -> None:
        content = index(
            entry("linux", "arm64", "a", platform={"variant": "v8"}), entry("linux", "amd64", "b")
        )
        assert select_platform(content).digest == digest("b")

    def test_reads_docker_manifest_lists(self) -> None:
        content = index(
            entry("linux", "amd64", "b", mediaType=DOCKER_MANIFEST), media_type=DOCKER_MANIFEST_LIST
        )
        chosen = select_platform(content)
        assert (chosen.digest, chosen.media_type) == (digest("b"), DOCKER_MANIFEST)

    def test_other_platforms_on_request(self) -> None:
        content = index(entry("linux", "amd64", "b"), entry("linux", "arm64", "a"))
        assert select_platform(content, architecture="arm64").digest == digest("a")

    def test_an_entry_without_variant_is_preferred_unless_one_is_asked_for(self) -> None:
        content = index(
            entry("linux", "amd64", "3", platform={"variant": "v3"}), entry("linux", "amd64", "b")
        )
        assert select_platform(content).digest == digest("b")
        assert select_platform(content, variant="v3").digest == digest("3")

    def test_attestations_and_nested_indexes_never_match(self) -> None:
        content = index(
            entry("linux", "amd64", "9", mediaType=OCI_INDEX),
            entry("unknown", "unknown", "8"),
            entry("linux", "amd64", "b"),
        )
        assert select_platform(content).digest == digest("b")

    def test_a_missing_platform_lists_the_ones_there_are(self) -> None:
        content = index(
            entry("linux", "arm64", "a", platform={"variant": "v8"}), entry("windows", "amd64", "7")
        )
        with pytest.raises(PlatformNotFound, match="no image for linux/amd64") as raised:
            select_platform(content)
        assert "linux/arm64/v8, windows/amd64" in raised.value.detail
        assert raised.value.status == 404

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (image_manifest(CONFIG, LAYERS), "expected an image index"),
            (b'{"schemaVersion": 2, "mediaType": "' + OCI_INDEX.encode() + b'"}', "manifests"),
            (b"\xff", "not JSON"),
        ],
    )
    def test_a_document_that_is_not_an_index(self, content: bytes, message: str) -> None:
        with pytest.raises(InvalidManifest, match=message):
            select_platform(content)
