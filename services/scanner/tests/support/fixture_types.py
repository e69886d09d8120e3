"""Types of the Trivy fixtures of tests/conftest.py, for tests' annotations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlplane_scanner.trivy import TrivyRunner

# make_trivy_runner(**overrides) -> a TrivyRunner with a fresh cache directory.
MakeTrivyRunner = Callable[..., TrivyRunner]


@dataclass(frozen=True)
class ScannerTestImages:
    """The test images in the registry (references by digest) and as OCI layouts."""

    secret: str
    vulnerable: str
    clean: str
    secret_layout: Path
    vulnerable_layout: Path
    clean_layout: Path
