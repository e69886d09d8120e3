"""Profiles: which platform the CLI talks to and with which key, kept between commands.

One JSON file, `<config dir>/profiles.json` (the config dir is `$MLPLANE_CONFIG_DIR`,
else `$XDG_CONFIG_HOME/mlplane`, else `~/.config/mlplane`), readable by its owner
only since it holds API keys. What a command uses, first found wins: `--url` /
`--api-key`, then `MLPLANE_URL` / `MLPLANE_API_KEY`, then the profile named by
`--profile` or `MLPLANE_PROFILE`, else the current one, else the local platform
(`http://127.0.0.1:8080`) with no key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplane_sdk.client import DEFAULT_URL

FILE_NAME = "profiles.json"
DEFAULT_PROFILE = "default"


class ProfileError(Exception):
    """The profiles file cannot be read or written, or names no such profile."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a command goes: the gateway's URL, the key, and the profile they came from."""

    url: str
    api_key: str | None
    profile: str | None


def config_dir() -> Path:
    configured = os.environ.get("MLPLANE_CONFIG_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "mlplane"


@dataclass
class Profiles:
    """The profiles file's content: `current` and each profile's `url` and `api_key`."""

    current: str | None
    profiles: dict[str, dict[str, str]]

    @classmethod
    def load(cls) -> Profiles:
        path = config_dir() / FILE_NAME
        try:
            document: Any = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(None, {})
        except (OSError, ValueError) as exc:
            raise ProfileError(f"cannot read {path}: {exc}") from None
        profiles = document.get("profiles") if isinstance(document, dict) else None
        if not isinstance(profiles, dict):
            raise ProfileError(f'{path} is not a profiles file (no "profiles" object)')
        return cls(document.get("current"), profiles)

    def save(self) -> Path:
        directory = config_dir()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / FILE_NAME
        staged = path.with_suffix(".tmp")
        # Created 0600 before anything is written: the file holds API keys.
        descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump({"current": self.current, "profiles": self.profiles}, out, indent=2)
        staged.replace(path)
        return path

    def resolve(self, url: str | None, api_key: str | None, profile: str | None) -> Target:
        """The target of a command given its flags (environment variables arrive as flags).

        Raises ProfileError for a named profile that does not exist."""
        name = profile or self.current
        chosen: dict[str, str] = {}
        if name is not None:
            if name not in self.profiles:
                if profile is not None:
                    known = ", ".join(sorted(self.profiles)) or "none"
                    raise ProfileError(f"no profile named {name!r} (profiles: {known})")
            else:
                chosen = self.profiles[name]
        return Target(
            url=url or chosen.get("url") or DEFAULT_URL,
            api_key=api_key or chosen.get("api_key"),
            profile=name if chosen else None,
        )
