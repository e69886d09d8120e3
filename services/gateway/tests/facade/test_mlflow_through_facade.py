"""MLflow's own client against the gateway's `/api/2.0/mlflow/`, with an API key as bearer token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import pytest
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import RestException

from .conftest import Gateway, Registry

T = TypeVar("T")


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """The synchronous MLflow client, off the event loop that serves both apps."""
    return await asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture
async def gateway(
    registry: Registry,
    start_gateway: Callable[..., AbstractAsyncContextManager[Gateway]],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Gateway]:
    # No retries inside MLflow's client: each error must reach the test at once.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    async with start_gateway({"registry": registry.url}) as started:
        yield started


async def test_the_mlflow_client_works_through_the_gateway(
    gateway: Gateway, registry: Registry, team: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "writer-token")
    client = MlflowClient(tracking_uri=gateway.url, registry_uri=gateway.url)
    created: RegisteredModel = await call(
        client.create_registered_model, "churn", description="through the gateway"
    )
    assert created.name == "churn"
    version: ModelVersion = await call(
        client.create_model_version,
        "churn",
        source="s3://models/churn/1/model.pkl",
        run_id="run-1",
        run_link="https://ci.example.com/runs/1",
        tags={
            "mlplane.sha256": "5" * 64,
            "mlplane.size_bytes": "1234",
            "mlplane.framework": "sklearn",
            "mlplane.git_repository": "https://git.example.com/ml/churn",
            "mlplane.commit_sha": "c" * 40,
        },
    )
    assert version.version == "1"
    assert version.user_id == "apikey:writer"  # the principal the gateway forwarded
    await call(client.set_registered_model_alias, "churn", "champion", "1")
    champion: ModelVersion = await call(client.get_model_version_by_alias, "churn", "champion")
    assert champion.source == "s3://models/churn/1/model.pkl"
    # The model landed in the caller's team, not MLflow's default one.
    assert registry.seen.headers[-1]["x-mlplane-team"] == team

    with pytest.raises(RestException) as missing:
        await call(client.get_registered_model, "nothing-here")
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"


async def test_mlflow_sees_the_gateways_own_refusals_as_its_error_codes(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "not-a-key")
    client = MlflowClient(tracking_uri=gateway.url, registry_uri=gateway.url)
    with pytest.raises(RestException) as refused:
        await call(client.get_registered_model, "churn")
    assert refused.value.error_code == "UNAUTHENTICATED"

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "reader-token")
    with pytest.raises(RestException) as forbidden:
        await call(client.create_registered_model, "churn")
    assert forbidden.value.error_code == "PERMISSION_DENIED"
    assert "models:write" in forbidden.value.message
