"""Page tokens of `registered-models/search` (versions page by the store's own cursor)."""

from __future__ import annotations

import base64
import binascii
import json

from mlplane_registry.mlflow.errors import invalid


def encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_offset(token: str | None) -> int:
    """The offset a page token of `registered-models/search` stands for."""
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = int(data["offset"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise invalid(f"Invalid page_token '{token}'.") from None
    if offset < 0:
        raise invalid(f"Invalid page_token '{token}'.")
    return offset
