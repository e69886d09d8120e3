"""The real scanner for the deployer benchmark's manifest-scan figure: its own `build` on a
throwaway schema, Trivy from its wheel, served by uvicorn on 127.0.0.1 (the deployer
calls it over real HTTP, as it would across containers), its routes under `/scanner`
as `mlplane serve scanner` serves them."""

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
from starlette.applications import Starlette
from starlette.routing import Mount


@asynccontextmanager
async def served_scanner(database: Database, workdir: Path) -> AsyncIterator[str]:
    """The scanner's address (its mount `/scanner` under it) while the block runs; its
    schema dropped after."""
    async with migrated_schema(database, MIGRATIONS) as schema:
        tables = define_tables(schema)
        context = service_context("scanner", database, tables.messaging, data_dir=workdir)
        settings = ScannerSettings(
            _env_file=None,  # type: ignore[call-arg]
            layout_root=workdir / "no-layouts",
        )
        app = service_app(context, build(context, tables, settings))
        async with serve(Starlette(routes=[Mount("/scanner", app=app)])) as url:
            yield url
