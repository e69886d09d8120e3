"""Shared fixtures of the gateway's tests: the real PostgreSQL and Redis, a throwaway
schema and a unique Redis key prefix per test, JWT signing keys made here.

Other engineers use the same PostgreSQL and Redis at once: each test migrates the
gateway into its own schema `t_<hex>` (dropped afterwards) and keeps its rate-limit
buckets under its own prefix (they expire on their own; nothing is flushed).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from mlplane_contracts.amqp import decode
from mlplane_contracts.envelope import CloudEvent
from mlplane_contracts.examples import example_event
from mlplane_gateway.deps import HostedGateway
from mlplane_gateway.keys.initial_admin import on_start
from mlplane_gateway.main import MIGRATIONS, build
from mlplane_gateway.settings import GatewaySettings
from mlplane_gateway.subscriptions.store import SubscriptionStore
from mlplane_gateway.tables import GatewayTables, define_tables
from mlplane_runtime.db import Database, create_database
from mlplane_runtime.migrations import upgrade_to_head
from mlplane_runtime.settings import RuntimeSettings
from mlplane_runtime.uow import UnitOfWorkFactory
from mlplane_testing.service import service_app, service_context
from sqlalchemy import text

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REDIS_URL = os.environ.get("MLPLANE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET_KEY = "test-gateway-secret-key-0123456789abcdef"
BOOTSTRAP_KEY = "test-bootstrap-admin-key-0123456789abcdef"
LOCAL_SINK = "http://127.0.0.1:9/hook"
"""A sink on loopback (allowlisted in test settings); nothing listens on the discard port."""
ALIAS_CHANGED = "io.mlplane.model.alias.changed.v1"
ISSUER = "https://idp.test/realms/mlplane"
AUDIENCE = "mlplane-gateway"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.algorithm, headers={"kid": self.kid, **header}
        )


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    return SigningKey("rsa-1", "RS256", rsa.generate_private_key(65537, 2048))


@pytest.fixture(scope="session")
def ec_key() -> SigningKey:
    return SigningKey("ec-1", "ES256", ec.generate_private_key(ec.SECP256R1()))


def claims(team: str, scopes: str = "models:read", **overrides: Any) -> dict[str, Any]:
    """Valid claims for `team` (the defaults the gateway's settings expect)."""
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": f"alice-{team}",
        "mlplane_team": team,
        "scope": scopes,
        "iat": now,
        "nbf": now - timedelta(seconds=5),
        "exp": now + timedelta(minutes=5),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture(scope="session")
def database_url() -> str:
    return os.environ.get("MLPLANE_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)


@pytest.fixture(scope="session")
async def gateway_database(database_url: str) -> AsyncIterator[Database]:
    db = create_database(database_url, pool_size=5, max_overflow=10)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def tables(gateway_database: Database, database_url: str) -> AsyncIterator[GatewayTables]:
    """The gateway migrated into a fresh schema, dropped (cascade) after the test."""
    schema = f"t_{uuid4().hex[:10]}"
    await gateway_database.ensure_schema(schema)
    try:
        await upgrade_to_head(database_url, MIGRATIONS, schema)
        yield define_tables(schema)
    finally:
        await gateway_database.drop_schema(schema)


@pytest.fixture
def uow_factory(gateway_database: Database, tables: GatewayTables) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(gateway_database, tables.messaging, "gateway")


@pytest.fixture
def redis_prefix() -> str:
    return f"mlplane-test:{uuid4().hex[:12]}"


@pytest.fixture
def settings_for(
    redis_prefix: str, rsa_key: SigningKey, ec_key: SigningKey
) -> Callable[..., GatewaySettings]:
    """Settings as a test wants them: real Redis under the test's prefix, inline JWKS."""

    def make(**overrides: Any) -> GatewaySettings:
        values: dict[str, Any] = {
            "env": "test",
            "secret_key": SECRET_KEY,
            "bootstrap_admin_key": BOOTSTRAP_KEY,
            "redis_url": REDIS_URL,
            "rate_limit_key_prefix": redis_prefix,
            "oidc_issuer": ISSUER,
            "oidc_audience": AUDIENCE,
            "oidc_jwks_json": json.dumps({"keys": [rsa_key.jwk(), ec_key.jwk()]}),
            "sink_allowlist": ["127.0.0.0/8"],
            # The auth matrices send many wrong credentials from one address.
            "auth_failure_limit": 10_000,
        }
        values.update(overrides)
        return GatewaySettings(**values)

    return make


def hosted_gateway(
    database: Database, tables: GatewayTables, settings: GatewaySettings, data_dir: Path
) -> tuple[FastAPI, HostedGateway]:
    """The gateway's app on `tables`, built by its own `build` as the host builds it (no
    other service installed, no Redis unless `settings` name one); nothing is started.
    Close the gateway with `aclose()`."""
    context = service_context(
        "gateway",
        database,
        tables.messaging,
        data_dir=data_dir,
        settings=RuntimeSettings(database_url=database.url, amqp_url=None, redis_url=None),
    )
    parts = build(context, tables, settings)
    assert isinstance(parts.resources, HostedGateway)
    return service_app(context, parts), parts.resources


class Harness:
    """A gateway app on the test's schema, with helpers to set up principals."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        gateway: HostedGateway,
        database: Database,
        app: FastAPI,
        uow_factory: UnitOfWorkFactory,
    ) -> None:
        self.client = client
        self.app = app
        self.gateway = gateway
        self.database = database
        self.tables = gateway.tables
        self._uow_factory = uow_factory

    async def prepare(self, data_dir: Path) -> None:
        """What a hosted start does before serving (the gateway's lifespan)."""
        await on_start(self.gateway.settings, self._uow_factory, self.tables, data_dir)

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    @property
    def operator(self) -> dict[str, str]:
        return self.bearer(BOOTSTRAP_KEY)

    async def create_key(
        self,
        team: str,
        scopes: list[str],
        *,
        expires_at: datetime | None = None,
        name: str = "ci",
    ) -> dict[str, Any]:
        """A new key (the answer, `key` included), created by the operator."""
        body: dict[str, Any] = {"team": team, "name": name, "scopes": scopes}
        if expires_at is not None:
            body["expires_at"] = expires_at.isoformat()
        response = await self.client.post("/v1/keys", json=body, headers=self.operator)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def key_token(self, team: str, *scopes: str) -> str:
        return str((await self.create_key(team, list(scopes)))["key"])

    async def webhook_secret(self, team: str) -> str:
        response = await self.client.put(f"/v1/teams/{team}/webhook-secret", headers=self.operator)
        assert response.status_code == 200, response.text
        return str(response.json()["secret"])

    async def subscription(self, team: str, sink: str = LOCAL_SINK) -> dict[str, Any]:
        """A new subscription of `team` (the answer, `secret` included), made by the operator."""
        response = await self.client.post(
            "/v1/subscriptions", json={"sink": sink, "team": team}, headers=self.operator
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def record_event(self, team: str, event_type: str = ALIAS_CHANGED) -> CloudEvent:
        """An event of `team` recorded as the gateway's consumer records it (fresh id)."""
        event = example_event(event_type)
        data = event.data.model_copy(update={"team": team})
        event = event.model_copy(update={"id": str(uuid4()), "data": data})
        async with self.database.sessions() as session:
            await SubscriptionStore(session, self.tables.subscriptions).record_event(event)
            await session.commit()
        return event

    async def dead_letter(self, team: str, subscription_id: str) -> int:
        """The id of a dead letter made in `subscription_id` (an event recorded, given up)."""
        event = await self.record_event(team)
        schema = self.tables.metadata.schema
        async with self.database.sessions() as session:
            delivery_id = (
                await session.execute(
                    text(
                        f"UPDATE \"{schema}\".subscription_deliveries SET status = 'dead',"
                        " attempt = 3, last_error = 'gave up'"
                        " WHERE subscription_id = :s AND event_id = :e RETURNING id"
                    ),
                    {"s": subscription_id, "e": event.id},
                )
            ).scalar_one()
            await session.commit()
        return int(delivery_id)

    async def outbox(self) -> list[CloudEvent]:
        """The events written to the outbox (no relay runs in these tests), in order."""
        schema = self.tables.metadata.schema
        async with self.database.sessions() as session:
            rows = await session.execute(
                text(f'SELECT headers, body, content_type FROM "{schema}".outbox ORDER BY position')
            )
            return [decode(h, bytes(b), c) for h, b, c in rows]


@pytest.fixture
async def harness_for(
    tables: GatewayTables,
    uow_factory: UnitOfWorkFactory,
    gateway_database: Database,
    settings_for: Callable[..., GatewaySettings],
    tmp_path: Path,
) -> AsyncIterator[Callable[..., Any]]:
    """Builds a harness with settings overrides; everything it built is closed after."""
    built: list[tuple[httpx.AsyncClient, HostedGateway]] = []

    async def make(**overrides: Any) -> Harness:
        app, gateway = hosted_gateway(
            gateway_database, tables, settings_for(**overrides), tmp_path / "gateway"
        )
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway.test"
        )
        built.append((client, gateway))
        return Harness(client, gateway, gateway_database, app, uow_factory)

    try:
        yield make
    finally:
        for client, gateway in built:
            await client.aclose()
            await gateway.aclose()


@pytest.fixture
async def harness(harness_for: Callable[..., Any]) -> Harness:
    """The gateway with default test settings (rate limits high enough not to bite)."""
    built: Harness = await harness_for(key_burst=10_000, team_burst=10_000)
    return built


@pytest.fixture
def team() -> str:
    return f"team-{uuid4().hex[:8]}"


@pytest.fixture
def other_team() -> str:
    return f"other-{uuid4().hex[:8]}"
