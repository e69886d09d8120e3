"""Fixtures of the manifest-scan tests: the real scanner (its own `build`, migrated into a
throwaway schema of the real PostgreSQL, real Trivy) served over real HTTP on
127.0.0.1 under `/scanner` as `mlplane serve scanner` serves it, and the deployer of
`tests/conftest.py` told to scan with it.

- `scanner_app`: that app (the scanner's routes mounted at `/scanner`), not served;
- `scanner_address`: where it is served for the test (`http://127.0.0.1:<port>`), what
  `MLPLANE_DEPLOYER_SCANNER_URL` is given; `scanner_url`: its base URL, mount included;
- `scanner_http`: a client of that scanner as the gateway calls it (team headers signed);
- `settings`: the deployer's settings with the scanner's address, scans on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from mlplane_deployer.settings import DeployerSettings
from mlplane_runtime.db import Database
from mlplane_scanner.main import MIGRATIONS as SCANNER_MIGRATIONS
from mlplane_scanner.main import build as build_scanner
from mlplane_scanner.settings import ScannerSettings
from mlplane_scanner.store import define_tables as scanner_tables
from mlplane_testing.database import migrated_schema
from mlplane_testing.http_server import serve
from mlplane_testing.identity import GatewayIdentity
from mlplane_testing.service import service_app, service_context
from starlette.applications import Starlette
from starlette.routing import Mount


@pytest.fixture
async def scanner_app(deployer_database: Database, tmp_path: Path) -> AsyncIterator[Starlette]:
    """The scanner's HTTP app from its own `build`: Trivy from the scanner's wheel, reports
    on the local disk, its tables in a fresh schema dropped after the test."""
    async with migrated_schema(deployer_database, SCANNER_MIGRATIONS) as schema:
        tables = scanner_tables(schema)
        context = service_context(
            "scanner", deployer_database, tables.messaging, data_dir=tmp_path / "scanner"
        )
        settings = ScannerSettings(
            _env_file=None,  # type: ignore[call-arg]
            layout_root=tmp_path / "no-layouts",
        )
        app = service_app(context, build_scanner(context, tables, settings))
        yield Starlette(routes=[Mount("/scanner", app=app)])


@pytest.fixture
async def scanner_address(scanner_app: Starlette) -> AsyncIterator[str]:
    async with serve(scanner_app) as url:
        yield url


@pytest.fixture
def scanner_url(scanner_address: str) -> str:
    return f"{scanner_address}/scanner"


@pytest.fixture
async def scanner_http(scanner_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=scanner_url, auth=GatewayIdentity("scanner"), timeout=120
    ) as client:
        yield client


@pytest.fixture
def settings(remote: Path, tmp_path: Path, scanner_address: str) -> DeployerSettings:
    return DeployerSettings(
        gitops_remote=str(remote),
        gitops_workdir=tmp_path / "clone",
        retry_delay_s=0,
        scanner_url=scanner_address,  # type: ignore[arg-type]
    )
