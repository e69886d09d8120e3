"""The platform the walkthrough runs against: the e2e suite's `mlplane up` (tests/e2e).

That conftest is loaded by its path, not copied: one way to start `make run`'s
platform for every suite that needs it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def load_by_path(name: str, path: Path) -> ModuleType:
    """The module at `path` (in no package), imported as `name`."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


e2e = load_by_path("mlplane_e2e_platform", REPO / "tests" / "e2e" / "conftest.py")
platform_database = e2e.platform_database
running_platform = e2e.running_platform
RunningPlatform = e2e.RunningPlatform
