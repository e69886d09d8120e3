"""The real scanner for the deployer benchmark's manifest-scan figure: its own `build` on a
throwaway schema, Trivy from its wheel, served by uvicorn on 127.0.0.1 (the deployer
calls it over real HTTP, as it would across containers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from mlplane_runtime.db import Database
from mlplane_scanner.main import MIGRATIONS, build
from mlplane_scanner.settings import ScannerSettings
from mlplane_scanner.store import define_tables
from mlplane_testing.database import migrated_schema
from mlplane_testing.http_server import serve
from mlplane_testing.service import service_app, service_context


@asynccontextmanager
async def served_scanner(database: Database, workdir: Path) -> AsyncIterator[str]:
    """The scanner's base URL while the block runs; its schema dropped after."""
    async with migrated_schema(database, MIGRATIONS) as schema:
        tables = define_tables(schema)
        context = service_context("scanner", database, tables.messaging, data_dir=workdir)
        settings = ScannerSettings(
            _env_file=None,  # type: ignore[call-arg]
            layout_root=workdir / "no-layouts",
        )
        async with serve(service_app(context, build(context, tables, settings))) as url:
            yield url
