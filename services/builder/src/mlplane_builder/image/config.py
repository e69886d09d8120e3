"""The image config of a model image: the base's config plus our layer, env, labels, history.

Pure: bytes in, bytes out. The output is canonical JSON, so equal inputs give
an equal config digest, and with it an equal image digest.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from mlplane_builder.image.canonical_json import canonical_json
from mlplane_builder.image.errors import InvalidImageConfig

CREATED_BY = "mlplane-builder"
EPOCH = "1970-01-01T00:00:00Z"
_DIFF_ID = re.compile(r"^sha256:[0-9a-f]{64}$")


def scratch_config(*, os: str = "linux", architecture: str = "amd64") -> dict[str, Any]:
    """The config of an image with no layers yet, for building `FROM scratch`."""
    return {
        "architecture": architecture,
        "os": os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }


def derive_config(
    base: Mapping[str, Any] | None,
    *,
    diff_id: str,
    env: Mapping[str, str],
    labels: Mapping[str, str],
    history_comment: str,
    created: str = EPOCH,
) -> bytes:
    """The config of `base` (a scratch linux/amd64 image when None) with one layer added.

    `diff_id` is appended to `rootfs.diff_ids`. `env` entries replace the
    base's entries of the same name where they stand, and new names follow
    the base's in name order (so a dict's insertion order does not change the
    digest). `labels` are merged over the base's. One history entry is
    appended and `created` is set. Everything else in the base is kept.
    Returns canonical JSON bytes.

    Raises `InvalidImageConfig` for a base whose rootfs, config, env, labels
    or history have the wrong shape, a diff-id that is not `sha256:<hex>`, an
    env name that is empty or holds "=", or a `created` that is not RFC 3339.
    """
    if not _DIFF_ID.match(diff_id):
        raise InvalidImageConfig(f"the layer's diff-id must be sha256:<64 hex>, got {diff_id!r}")
    _check_created(created)
    document = copy.deepcopy(dict(base)) if base is not None else scratch_config()

    rootfs = document.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidImageConfig('the base config has no rootfs of type "layers"')
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list):
        raise InvalidImageConfig("the base config's rootfs.diff_ids is not a list")
    diff_ids.append(diff_id)

    runtime = document.get("config")
    if runtime is None:  # Docker writes null for an image that never set any
        runtime = document["config"] = {}
    if not isinstance(runtime, dict):
        raise InvalidImageConfig("the base config's config is not an object")
    runtime["Env"] = merge_env(_string_list(runtime.get("Env"), "config.Env"), env)
    runtime["Labels"] = {**_string_map(runtime.get("Labels"), "config.Labels"), **labels}

    history = document.get("history")
    if history is None:
        history = document["history"] = []
    if not isinstance(history, list):
        raise InvalidImageConfig("the base config's history is not a list")
    history.append({"created": created, "created_by": CREATED_BY, "comment": history_comment})
    document["created"] = created
    return canonical_json(document)


def merge_env(base: list[str], ours: Mapping[str, str]) -> list[str]:
    """`base` ("NAME=value" entries) with `ours` set: replaced in place, new names appended sorted.

    Raises `InvalidImageConfig` for a name of ours that is empty or holds "=".
    """
    for name in ours:
        if not name or "=" in name:
            raise InvalidImageConfig(f"an env name must be non-empty without '=', got {name!r}")
    merged: list[str] = []
    for entry in base:
        name = entry.split("=", 1)[0]
        merged.append(f"{name}={ours[name]}" if name in ours else entry)
    present = {entry.split("=", 1)[0] for entry in base}
    merged.extend(f"{name}={ours[name]}" for name in sorted(ours) if name not in present)
    return merged


def _string_list(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidImageConfig(f"the base config's {field} is not a list of strings")
    return value


def _string_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidImageConfig(f"the base config's {field} is not a map of strings")
    return value


def _check_created(created: str) -> None:
    try:
        parsed = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except (ValueError, AttributeError) as exc:
        raise InvalidImageConfig(f"created must be an RFC 3339 time, got {created!r}") from exc
    if parsed.tzinfo is None or "T" not in created:
        raise InvalidImageConfig(f"created must be an RFC 3339 time with a zone, got {created!r}")
