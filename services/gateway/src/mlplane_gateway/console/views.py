"""What the pages show of the services' answers, shaped for the templates. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

LIFECYCLE_STEPS: Final = ("registered", "built", "scanned", "deployed")
_STAGE_RANK: Final = {
    "registered": 0,
    "building": 0,
    "build_failed": 0,
    "built": 1,
    "scanned": 2,
    "deployed": 3,
}


def lifecycle_steps(lifecycle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each step of registered → built → scanned → deployed, done or not, with what
    the version's lifecycle says of it."""
    stage = str(lifecycle.get("stage") or "registered")
    rank = _STAGE_RANK.get(stage, 0)
    deployments = lifecycle.get("deployments") or {}
    notes = {
        "registered": "",
        "built": "building" if stage == "building" else (lifecycle.get("build_failure") or ""),
        "scanned": lifecycle.get("scan_verdict") or "",
        "deployed": ", ".join(f"{env}: {phase}" for env, phase in sorted(deployments.items())),
    }
    steps = []
    for index, name in enumerate(LIFECYCLE_STEPS):
        done = rank >= index and not (name == "built" and stage == "build_failed")
        if name == "deployed":
            done = bool(lifecycle.get("deployed_environments")) or stage == "deployed"
        steps.append({"name": name, "done": done, "note": notes[name]})
    return steps


def image_digest(image: str | None) -> str | None:
    """The `sha256:...` digest of an image reference by digest, else None."""
    if not image or "@" not in image:
        return None
    digest = image.rsplit("@", 1)[1]
    return digest if digest.startswith("sha256:") else None


def web_link(url: Any) -> str | None:
    """`url` when it is an http(s) URL a page may link to, else None (a `javascript:`
    URL from a CI payload must never become a link)."""
    if not isinstance(url, str):
        return None
    scheme = urlsplit(url).scheme.lower()
    return url if scheme in ("http", "https") else None


def safe_return_path(path: str | None, default: str) -> str:
    """`path` when it is one of the console's own pages, else `default`: a form's
    `return_to` must not send the browser elsewhere."""
    if not path or not path.startswith("/console/") or path.startswith("//") or "\\" in path:
        return default
    parts = urlsplit(path)
    if parts.scheme or parts.netloc:
        return default
    return path
