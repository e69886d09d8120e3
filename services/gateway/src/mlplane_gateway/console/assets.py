"""The console's static files: read once, served with their content hash in the URL,
so they can be cached for a year (`immutable`): a changed file is a new URL."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
MEDIA_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
LONG_CACHE: Final = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def _load() -> dict[str, Asset]:
    assets: dict[str, Asset] = {}
    for path in sorted(STATIC_DIR.rglob("*")):
        media_type = MEDIA_TYPES.get(path.suffix)
        if not path.is_file() or media_type is None:
            continue
        body = path.read_bytes()
        name = path.relative_to(STATIC_DIR).as_posix()
        assets[name] = Asset(body, media_type, hashlib.sha256(body).hexdigest()[:16])
    return assets


ASSETS: Final = _load()


def asset_url(name: str) -> str:
    """The URL of static file `name` (KeyError for one not shipped: a template bug)."""
    return f"/console/static/{ASSETS[name].etag}/{name}"
