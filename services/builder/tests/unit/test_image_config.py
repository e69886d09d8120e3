"""derive_config: the base image's config plus our layer, as canonical JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlplane_builder.image.config import derive_config, merge_env
from mlplane_builder.image.errors import InvalidImageConfig

DIFF_ID = "sha256:" + "a" * 64
BASE_DIFF_ID = "sha256:" + "b" * 64


def base_config() -> dict[str, Any]:
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-05-01T10:00:00.123456789Z",
        "config": {
            "Env": ["PATH=/usr/local/bin:/usr/bin", "PYTHONUNBUFFERED=1", "MODEL_DIR=/srv"],
            "Cmd": ["python", "-m", "server"],
            "Labels": {"org.opencontainers.image.vendor": "base", "keep": "me"},
            "ExposedPorts": {"8080/tcp": {}},
        },
        "rootfs": {"type": "layers", "diff_ids": [BASE_DIFF_ID]},
        "history": [{"created": "2024-05-01T10:00:00Z", "created_by": "ADD rootfs"}],
    }


def derive(base: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "diff_id": DIFF_ID,
        "env": {"MODEL_DIR": "/models/fraud/3", "MODEL_NAME": "fraud"},
        "labels": {"org.opencontainers.image.vendor": "mlplane", "io.mlplane.model": "fraud"},
        "history_comment": "model fraud version 3",
    }
    arguments.update(overrides)
    document: dict[str, Any] = json.loads(derive_config(base, **arguments))
    return document


class TestFromABase:
    def test_our_layer_follows_the_base_layers(self) -> None:
        assert derive(base_config())["rootfs"] == {
            "type": "layers",
            "diff_ids": [BASE_DIFF_ID, DIFF_ID],
        }

    def test_env_overrides_in_place_and_appends_new_names(self) -> None:
        assert derive(base_config())["config"]["Env"] == [
            "PATH=/usr/local/bin:/usr/bin",
            "PYTHONUNBUFFERED=1",
            "MODEL_DIR=/models/fraud/3",
            "MODEL_NAME=fraud",
        ]

    def test_labels_merge_over_the_base(self) -> None:
        assert derive(base_config())["config"]["Labels"] == {
            "org.opencontainers.image.vendor": "mlplane",
            "keep": "me",
            "io.mlplane.model": "fraud",
        }

    def test_one_history_entry_is_appended_and_created_is_fixed(self) -> None:
        document = derive(base_config(), created="2026-01-02T03:04:05Z")
        assert document["history"][-1] == {
            "created": "2026-01-02T03:04:05Z",
            "created_by": "mlplane-builder",
            "comment": "model fraud version 3",
        }
        assert len(document["history"]) == 2
        assert document["created"] == "2026-01-02T03:04:05Z"

    def test_everything_else_of_the_base_is_kept(self) -> None:
        document = derive(base_config())
        assert document["config"]["Cmd"] == ["python", "-m", "server"]
        assert document["config"]["ExposedPorts"] == {"8080/tcp": {}}
        assert (document["os"], document["architecture"]) == ("linux", "amd64")

    def test_the_base_mapping_is_not_changed(self) -> None:
        base = base_config()
        derive(base)
        assert base == base_config()

    def test_null_config_env_and_history_of_docker_images_are_accepted(self) -> None:
        base = base_config()
        base["config"] = None
        base["history"] = None
        document = derive(base, env={"A": "1"}, labels={})
        assert document["config"] == {"Env": ["A=1"], "Labels": {}}
        assert len(document["history"]) == 1


class TestScratch:
    def test_no_base_gives_a_linux_amd64_image_with_only_our_layer(self) -> None:
        document = derive(None)
        assert (document["os"], document["architecture"]) == ("linux", "amd64")
        assert document["rootfs"]["diff_ids"] == [DIFF_ID]
        assert document["config"]["Env"] == ["MODEL_DIR=/models/fraud/3", "MODEL_NAME=fraud"]
        assert document["created"] == "1970-01-01T00:00:00Z"


class TestCanonical:
    def test_equal_inputs_give_equal_bytes_whatever_the_mapping_order(self) -> None:
        first = derive_config(
            base_config(),
            diff_id=DIFF_ID,
            env={"B": "2", "A": "1"},
            labels={"y": "1", "x": "2"},
            history_comment="c",
        )
        second = derive_config(
            dict(reversed(list(base_config().items()))),
            diff_id=DIFF_ID,
            env={"A": "1", "B": "2"},
            labels={"x": "2", "y": "1"},
            history_comment="c",
        )
        assert first == second

    def test_bytes_are_compact_sorted_utf8(self) -> None:
        raw = derive_config(None, diff_id=DIFF_ID, env={}, labels={"é": "ü"}, history_comment="c")
        assert raw.startswith(b'{"architecture":"amd64","config":{"Env":[],"Labels":{"\xc3\xa9"')
        assert b" " not in raw


class TestRefused:
    @pytest.mark.parametrize("diff_id", ["sha256:abc", "a" * 64, "sha512:" + "a" * 64, ""])
    def test_a_diff_id_that_is_not_sha256_hex(self, diff_id: str) -> None:
        with pytest.raises(InvalidImageConfig, match="diff-id"):
            derive(None, diff_id=diff_id)

    @pytest.mark.parametrize("created", ["yesterday", "2026-01-02", "2026-01-02T03:04:05"])
    def test_a_created_time_that_is_not_rfc3339(self, created: str) -> None:
        with pytest.raises(InvalidImageConfig, match="RFC 3339"):
            derive(None, created=created)

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("rootfs", {"type": "layers"}, "diff_ids"),
            ("rootfs", None, "rootfs"),
            ("config", ["x"], "config is not an object"),
            ("history", {}, "history"),
        ],
    )
    def test_a_base_of_the_wrong_shape(self, field: str, value: object, message: str) -> None:
        base = base_config()
        base[field] = value
        with pytest.raises(InvalidImageConfig, match=message):
            derive(base)

    def test_a_base_env_that_is_not_strings(self) -> None:
        base = base_config()
        base["config"]["Env"] = "PATH=/bin"
        with pytest.raises(InvalidImageConfig, match="Env"):
            derive(base)

    @pytest.mark.parametrize("name", ["", "A=B"])
    def test_an_env_name_that_cannot_be_one(self, name: str) -> None:
        with pytest.raises(InvalidImageConfig, match="env name"):
            merge_env([], {name: "1"})


class TestMergeEnv:
    def test_values_may_contain_equals_signs(self) -> None:
        assert merge_env(["OPTS=a=b"], {"OPTS": "c=d"}) == ["OPTS=c=d"]

    def test_new_names_are_appended_in_name_order(self) -> None:
        assert merge_env(["Z=1"], {"B": "2", "A": "3"}) == ["Z=1", "A=3", "B=2"]
