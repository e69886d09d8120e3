"""The version of the installed mlplane SDK (and of the `mlplane` command)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def _installed_version() -> str:
    try:
        return version("mlplane-sdk")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0.0.0+unknown"


VERSION = _installed_version()
