"""What a resumable upload remembers between runs of `mlplane upload`.

An upload is the registry's plan (its id and one presigned URL per part) plus the
ETag of every part stored so far. It is kept in `<state dir>/uploads/<key>.json`,
the key naming the platform, the model and the file as it is now (path, size,
modification time): the same command run again after an interruption finds it and
sends only the parts still missing; a changed file, another model or a plan whose
URLs have expired starts afresh. The file's sha256 is kept too, so a resumed
upload does not read the whole file twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Part URLs are given for `expires_s`; leave this much margin before trusting them.
_URL_MARGIN_S = 120


def state_dir() -> Path:
    configured = os.environ.get("MLPLANE_STATE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "mlplane"


def upload_key(url: str, model: str, path: Path) -> str:
    stat = path.stat()
    identity = f"{url}\n{model}\n{path.resolve()}\n{stat.st_size}\n{stat.st_mtime_ns}"
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


@dataclass
class UploadState:
    """One upload in progress: the plan, the file's digest, and the parts done."""

    key: str
    sha256: str
    size_bytes: int
    plan: dict[str, Any] | None = None
    planned_at: float = 0.0
    etags: dict[int, str] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return state_dir() / "uploads" / f"{self.key}.json"

    @classmethod
    def find(cls, key: str) -> UploadState | None:
        """The state saved under `key`, if any is readable (a broken file is ignored)."""
        path = state_dir() / "uploads" / f"{key}.json"
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                key=key,
                sha256=document["sha256"],
                size_bytes=int(document["size_bytes"]),
                plan=document.get("plan"),
                planned_at=float(document.get("planned_at", 0.0)),
                etags={int(n): str(e) for n, e in document.get("etags", {}).items()},
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def plan_usable(self, now: float | None = None) -> bool:
        """A plan whose part URLs are still valid for a while."""
        if self.plan is None:
            return False
        expires_s = float(self.plan.get("expires_s", 0))
        return (now or time.time()) < self.planned_at + expires_s - _URL_MARGIN_S

    def new_plan(self, plan: dict[str, Any]) -> None:
        self.plan, self.planned_at, self.etags = plan, time.time(), {}
        self.save()

    def missing_parts(self) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = (self.plan or {}).get("parts", [])
        return [p for p in parts if int(p["number"]) not in self.etags]

    def done_bytes(self) -> int:
        parts = (self.plan or {}).get("parts", [])
        return sum(int(p["size_bytes"]) for p in parts if int(p["number"]) in self.etags)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        staged = self.path.with_suffix(".tmp")
        # 0600: the plan's presigned URLs let whoever holds them write the parts.
        descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(
                {
                    "sha256": self.sha256,
                    "size_bytes": self.size_bytes,
                    "plan": self.plan,
                    "planned_at": self.planned_at,
                    "etags": {str(n): e for n, e in self.etags.items()},
                },
                out,
            )
        staged.replace(self.path)

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)
