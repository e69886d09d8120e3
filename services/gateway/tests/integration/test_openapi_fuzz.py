"""Schemathesis over the gateway's own OpenAPI document: no input makes it answer 5xx.

The app runs in process (schemathesis' ASGI transport, on its own event-loop
thread), on the real PostgreSQL; its database engine opens a connection per use
(NullPool), so nothing bound to that thread's loop outlives a request. Calls carry
the operator key, so generated input reaches the handlers rather than stopping at
authentication (the auth matrix covers that door). Every documented route is
fuzzed but the endless SSE stream; the facade's routes are not in the document
(each service documents its own API).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from mlplane_gateway.settings import GatewaySettings
from mlplane_gateway.tables import TABLES, GatewayTables
from mlplane_runtime.db import Database, asyncpg_url
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from ..conftest import BOOTSTRAP_KEY, DEFAULT_TEST_DATABASE_URL, hosted_gateway

MAX_EXAMPLES = 25


def _database(database_url: str) -> Database:
    url = asyncpg_url(database_url)
    engine = create_async_engine(url, poolclass=NullPool)
    return Database(
        url=url,
        engine=engine,
        sessions=async_sessionmaker(engine, expire_on_commit=False),
        readers=async_sessionmaker(
            engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        ),
    )


def _document() -> dict[str, Any]:
    # Building the app connects to nothing: the document is read before any test runs.
    with TemporaryDirectory(prefix="gateway-openapi-") as data_dir:
        app, _ = hosted_gateway(
            _database(DEFAULT_TEST_DATABASE_URL),
            TABLES,
            GatewaySettings(env="dev", redis_url=None),
            Path(data_dir),
        )
        return app.openapi()


schema = schemathesis.openapi.from_dict(_document())


@pytest.fixture
def gateway_app(
    tables: GatewayTables,
    database_url: str,
    settings_for: Callable[..., GatewaySettings],
    tmp_path: Path,
) -> FastAPI:
    """The gateway on the test's schema; in-process buckets (no Redis client tied to the
    transport's loop) that never run dry."""
    settings = settings_for(redis_url=None, key_burst=10**6, team_burst=10**6)
    app, _ = hosted_gateway(_database(database_url), tables, settings, tmp_path)
    return app


# The SSE stream never ends when it is admitted: its answers are checked in its own tests.
@schema.include(path_regex="^/v1/").exclude(path="/v1/events/stream").parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_generated_request_gets_a_server_error(case: Any, gateway_app: FastAPI) -> None:
    response = case.call(app=gateway_app, headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"})
    assert response.status_code < 500, (case.method, case.path, response.text)
