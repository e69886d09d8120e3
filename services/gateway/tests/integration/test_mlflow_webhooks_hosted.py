"""MLflow's webhooks API on the gateway's subscriptions, driven by MLflow's own client.

The platform (registry + gateway, one process, HTTP on 127.0.0.1, in-process bus)
as `test_subscriptions_hosted` runs it. A team's API key is `MLFLOW_TRACKING_TOKEN`;
`MlflowClient` creates, lists, gets, updates, tests and deletes webhooks, and the
registry's events reach a receiver on 127.0.0.1 (allowlisted) in MLflow's format,
signed as MLflow signs: the test checks the signature with MLflow's own function.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.entities.webhook import WebhookEvent, WebhookStatus
from mlflow.exceptions import MlflowException
from mlflow.webhooks.delivery import _generate_hmac_signature
from mlplane_testing.http_server import serve

from ..conftest import BOOTSTRAP_KEY
from .test_subscriptions_hosted import Receiver, eventually, platform_url  # noqa: F401

T = TypeVar("T")
SECRET = "mlflow-webhook-secret"


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """The synchronous MLflow client, off the event loop serving the platform."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def check_mlflow_signature(headers: dict[str, str], body: bytes) -> None:
    expected = _generate_hmac_signature(
        SECRET, headers["x-mlflow-delivery-id"], headers["x-mlflow-timestamp"], body.decode()
    )
    assert headers["x-mlflow-signature"] == expected


async def test_mlflow_webhooks_are_durable_subscriptions_in_mlflows_format(
    platform_url: str,  # noqa: F811
    team: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = Receiver()
    async with (
        serve(receiver) as sink_base,
        httpx.AsyncClient(base_url=platform_url, timeout=10) as http,
    ):
        created = await http.post(
            "/v1/keys",
            json={
                "team": team,
                "name": "mlflow",
                "scopes": ["models:read", "models:write", "events:subscribe"],
            },
            headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"},
        )
        assert created.status_code == 201, created.text
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", created.json()["key"])
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        client = MlflowClient(tracking_uri=platform_url, registry_uri=platform_url)

        webhook = await call(
            client.create_webhook,
            name="deploy-hook",
            url=f"{sink_base}/mlflow",
            events=["model_version.created", "model_version_alias.created"],
            description="tells CD",
            secret=SECRET,
        )
        assert webhook.name == "deploy-hook"
        assert webhook.status == WebhookStatus.ACTIVE
        assert {str(e) for e in webhook.events} == {
            "model_version.created",
            "model_version_alias.created",
        }
        listed = await call(client.list_webhooks)
        assert [w.webhook_id for w in listed] == [webhook.webhook_id]
        got = await call(client.get_webhook, webhook.webhook_id)
        assert (got.url, got.description) == (f"{sink_base}/mlflow", "tells CD")

        # Events mlplane has no platform event for are refused, naming those it has.
        with pytest.raises(MlflowException) as unserved:
            await call(
                client.create_webhook,
                name="tags",
                url=f"{sink_base}/tags",
                events=["model_version_tag.set"],
            )
        assert unserved.value.error_code == "INVALID_PARAMETER_VALUE"
        assert "model_version.created" in unserved.value.message
        # A private address is refused as every sink is.
        with pytest.raises(MlflowException) as private:
            await call(
                client.create_webhook,
                name="x",
                url="http://10.1.2.3/hook",
                events=["model_version.created"],
            )
        assert private.value.error_code == "INVALID_PARAMETER_VALUE"

        # Test: one example, signed, sent now.
        tested = await call(
            client.test_webhook, webhook.webhook_id, WebhookEvent("model_version", "created")
        )
        assert tested.success, tested
        assert tested.response_status == 200
        headers, body, _ = receiver.received[-1]
        check_mlflow_signature(headers, body)
        assert json.loads(body)["data"]["name"] == "example_model"

        # Real events: a version registered, then an alias set on it.
        await call(client.create_registered_model, "fraud")
        await call(
            client.create_model_version,
            "fraud",
            source="s3://models/fraud/1/model.pkl",
            run_id="run-1",
            tags={
                "mlplane.sha256": "5" * 64,
                "mlplane.size_bytes": "1234",
                "mlplane.commit_sha": "c" * 40,
                "mlplane.git_repository": "https://git.example.com/ml/fraud",
                "team": "risk",
            },
            description="first",
        )
        await call(client.set_registered_model_alias, "fraud", "champion", "1")

        async def delivered() -> list[dict[str, Any]]:
            found = [
                (headers, json.loads(body))
                for headers, body, status in receiver.received
                if status == 200 and json.loads(body)["data"].get("name") == "fraud"
            ]
            return [{"headers": h, "payload": p} for h, p in found] if len(found) >= 2 else []

        deliveries = await eventually(delivered, "the MLflow deliveries")
        payloads = {(d["payload"]["entity"], d["payload"]["action"]): d for d in deliveries}
        version = payloads[("model_version", "created")]["payload"]["data"]
        assert version == {
            "name": "fraud",
            "version": "1",
            "source": "s3://models/fraud/1/model.pkl",
            "run_id": "run-1",
            "tags": {"team": "risk"},
            "description": "first",
        }
        alias = payloads[("model_version_alias", "created")]["payload"]["data"]
        assert alias == {"name": "fraud", "alias": "champion", "version": "1"}
        for delivery in deliveries:
            raw = [
                body
                for headers, body, _ in receiver.received
                if headers["x-mlflow-delivery-id"] == delivery["headers"]["x-mlflow-delivery-id"]
            ][-1]
            check_mlflow_signature(delivery["headers"], raw)

        # Disabled, nothing more is delivered; deleted, it is gone.
        updated = await call(
            client.update_webhook, webhook.webhook_id, status=WebhookStatus.DISABLED
        )
        assert updated.status == WebhookStatus.DISABLED
        await call(client.delete_webhook, webhook.webhook_id)
        with pytest.raises(MlflowException) as gone:
            await call(client.get_webhook, webhook.webhook_id)
        assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST"
