"""Canonical JSON: one byte sequence per value, so a digest names the value itself."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """`value` as UTF-8 JSON with sorted keys and no insignificant whitespace.

    Raises `TypeError` for values JSON cannot carry and `ValueError` for NaN or
    infinities (which have no JSON form).
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
