"""Fixtures of the facade's tests: real servers on 127.0.0.1, the real registry behind them.

The registry is migrated into a throwaway schema `t_<hex>` of the real PostgreSQL
and served by uvicorn on a free port, mounted under `/registry` as the platform
mounts it. The gateway side is a service app with only the facade's routes and
test stand-ins for the core's authentication (bearer tokens named in `CALLERS`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import pytest
from fastapi import APIRouter, FastAPI, Request
from mlplane_gateway.facade.identity import IdentitySigner
from mlplane_gateway.facade.routes import facade_router
from mlplane_gateway.facade.upstreams import UpstreamLimits, Upstreams
from mlplane_registry.main import MIGRATIONS, build
from mlplane_registry.mlflow.settings import MlflowApiSettings
from mlplane_registry.settings import RegistrySettings
from mlplane_registry.store import define_tables
from mlplane_runtime.app import create_service_app
from mlplane_runtime.db import Database, create_database
from mlplane_runtime.deps import bind_service
from mlplane_runtime.errors import MlplaneError
from mlplane_runtime.migrations import upgrade_to_head
from mlplane_testing.http_server import serve
from mlplane_testing.identity import TEST_IDENTITY_SECRET
from mlplane_testing.service import service_context
from starlette.types import ASGIApp, Receive, Scope, Send

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
# The secret every test gateway signs with (the root conftest sets it for the environment).
IDENTITY_SECRET = TEST_IDENTITY_SECRET.encode()

Serve = Callable[..., AbstractAsyncContextManager[str]]


@dataclass(frozen=True)
class TestCaller:
    id: str
    team: str | None
    scopes: frozenset[str]


class NotAuthenticated(MlplaneError):
    status = 401
    title = "Unauthenticated"


class MissingScope(MlplaneError):
    status = 403
    title = "Forbidden"


def callers(team: str) -> dict[str, TestCaller]:
    """Bearer token → caller, for one test's team."""
    return {
        "reader-token": TestCaller("apikey:reader", team, frozenset({"models:read"})),
        "writer-token": TestCaller(
            "apikey:writer", team, frozenset({"models:read", "models:write"})
        ),
        "operator-token": TestCaller(
            "bootstrap", None, frozenset({"models:read", "models:write", "admin"})
        ),
    }


def auth_dependencies(
    known: Mapping[str, TestCaller],
) -> tuple[Callable[[Request], Awaitable[TestCaller]], Callable[[TestCaller, str], None]]:
    async def authenticate(request: Request) -> TestCaller:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        caller = known.get(token)
        if caller is None:
            raise NotAuthenticated("no valid bearer token")
        return caller

    def require_scope(caller: TestCaller, scope: str) -> None:
        if scope not in caller.scopes:
            raise MissingScope(f"this credential lacks the {scope} scope", scope=scope)

    return authenticate, require_scope


@pytest.fixture
def http_server() -> Serve:
    return serve


@pytest.fixture(scope="session")
def database_url() -> str:
    return os.environ.get("MLPLANE_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


@pytest.fixture(scope="session")
async def registry_database(database_url: str) -> AsyncIterator[Database]:
    db = create_database(database_url, pool_size=2, max_overflow=5)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
def team() -> str:
    return f"team-{uuid4().hex[:8]}"


@dataclass
class RecordedRequests:
    """Headers of every request the wrapped app received, in order."""

    headers: list[dict[str, str]] = field(default_factory=list)

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def recording(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                self.headers.append(
                    {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
                )
            await app(scope, receive, send)

        return recording


@dataclass
class Registry:
    url: str
    """Its base URL, mount included (`http://127.0.0.1:<port>/registry`)."""
    seen: RecordedRequests


@pytest.fixture
async def registry(
    registry_database: Database, database_url: str, http_server: Serve, team: str, tmp_path: Path
) -> AsyncIterator[Registry]:
    """The real registry (its API and MLflow's) under `/registry`, on a free port."""
    schema = f"t_{uuid4().hex[:10]}"
    await registry_database.ensure_schema(schema)
    try:
        await upgrade_to_head(database_url, MIGRATIONS, schema)
        tables = define_tables(schema)
        # The tests' versions name artifacts under s3://models/: the team may use it.
        settings = RegistrySettings(team_artifact_locations={team: ["s3://models/"]})
        # The registry verifies what the gateway under test signs, as in production.
        context = service_context(
            "registry",
            registry_database,
            tables.messaging,
            data_dir=tmp_path / "registry",
            identity_secret=IDENTITY_SECRET,
        )
        parts = build(context, tables, settings, MlflowApiSettings())
        mounted = APIRouter(prefix="/registry")
        mounted.include_router(bind_service(parts.routers, context, parts))
        app = create_service_app("registry", routers=[mounted])
        seen = RecordedRequests()
        async with http_server(seen.wrap(app)) as url:
            yield Registry(f"{url}/registry", seen)
    finally:
        await registry_database.drop_schema(schema)


@dataclass
class Gateway:
    url: str
    upstreams: Upstreams
    signer: IdentitySigner


def gateway_app(
    upstreams: Upstreams, signer: IdentitySigner, known: Mapping[str, TestCaller]
) -> FastAPI:
    authenticate, require_scope = auth_dependencies(known)
    return create_service_app(
        "gateway",
        routers=[
            facade_router(
                upstreams, authenticate=authenticate, require_scope=require_scope, signer=signer
            )
        ],
    )


@pytest.fixture
def start_gateway(
    http_server: Serve, team: str
) -> Callable[..., AbstractAsyncContextManager[Gateway]]:
    """Starts a gateway over `base_urls` with `limits` (and a breaker `clock`)."""

    @asynccontextmanager
    async def start(
        base_urls: Mapping[str, str],
        limits: UpstreamLimits | None = None,
        clock: Callable[[], float] | None = None,
    ) -> AsyncIterator[Gateway]:
        signer = IdentitySigner(IDENTITY_SECRET)
        async with Upstreams.build(base_urls, limits, clock=clock) as upstreams:
            app = gateway_app(upstreams, signer, callers(team))
            async with http_server(app) as url:
                yield Gateway(url, upstreams, signer)

    return start
