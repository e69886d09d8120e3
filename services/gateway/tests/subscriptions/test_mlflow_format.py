"""MLflow webhooks' wire format and events on platform events. Pure."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from mlplane_contracts import events as ev
from mlplane_contracts.envelope import new_event
from mlplane_gateway.subscriptions.domain import ContentMode, Subscription, matches
from mlplane_gateway.subscriptions.mlflow import (
    mlflow_event_of,
    mlflow_request,
    payload_data,
    signature,
)
from mlplane_gateway.subscriptions.mlflow_service import check_events
from mlplane_runtime.errors import InvalidInput

T0 = datetime(2026, 12, 5, tzinfo=UTC)


def registered() -> ev.ModelVersionRegistered:
    return ev.ModelVersionRegistered(
        team="risk",
        model="fraud",
        version=3,
        artifact=ev.ModelArtifact(
            uri="s3://models/fraud/3", sha256="5" * 64, size_bytes=1, framework="sklearn"
        ),
        lineage=ev.Lineage(
            git_repository="https://git.example.com/x",
            commit_sha="c" * 40,
            ci_run_url="https://ci.example.com/1",
        ),
        tags={
            "owner": "ana",
            "mlplane.mlflow.source": "runs:/r1/model",
            "mlplane.mlflow.run_id": "r1",
            "mlplane.mlflow.description": "better",
        },
        registered_by="apikey:ci",
        registered_at=T0,
    )


def alias(version: int | None) -> ev.ModelAliasChanged:
    return ev.ModelAliasChanged(
        team="risk", model="fraud", alias="champion", version=version, changed_by="x", changed_at=T0
    )


def test_platform_events_as_mlflow_events_and_payloads() -> None:
    event = new_event(registered(), subject="models/fraud/versions/3", source="/mlplane/registry")
    assert mlflow_event_of(event) == "model_version.created"
    assert payload_data(event) == {
        "name": "fraud",
        "version": "3",
        "source": "runs:/r1/model",
        "run_id": "r1",
        "tags": {"owner": "ana"},  # mlplane's own tags never shown
        "description": "better",
    }
    moved = new_event(alias(3), subject="x", source="/mlplane/registry")
    assert mlflow_event_of(moved) == "model_version_alias.created"
    assert payload_data(moved) == {"name": "fraud", "alias": "champion", "version": "3"}
    removed = new_event(alias(None), subject="x", source="/mlplane/registry")
    assert mlflow_event_of(removed) == "model_version_alias.deleted"


def test_the_signature_is_mlflows_construction() -> None:
    event = new_event(alias(1), subject="x", source="/mlplane/registry")
    headers, body = mlflow_request("s3cret", event, 1_900_000_000)
    assert headers["X-MLflow-Delivery-Id"] == event.id
    assert headers["X-MLflow-Timestamp"] == "1900000000"
    mac = hmac.new(b"s3cret", f"{event.id}.1900000000.".encode() + body, hashlib.sha256)
    assert headers["X-MLflow-Signature"] == "v1," + base64.b64encode(mac.digest()).decode()
    assert signature("s3cret", event.id, 1_900_000_000, body) == headers["X-MLflow-Signature"]
    document = json.loads(body)
    assert (document["entity"], document["action"]) == ("model_version_alias", "created")


def test_a_webhook_matches_only_the_mlflow_events_it_asked_for() -> None:
    webhook = Subscription(
        id="sub_1",
        team="risk",
        sink_url="https://hooks.example.com/",
        types=(ev.MODEL_ALIAS_CHANGED,),
        subject_prefix=None,
        secret="s",
        created_at=T0,
        mode=ContentMode.MLFLOW,
        mlflow_events=("model_version_alias.created",),
    )
    assert matches(webhook, new_event(alias(2), subject="x", source="/mlplane/registry"))
    assert not matches(webhook, new_event(alias(None), subject="x", source="/mlplane/registry"))


def test_webhook_events_are_checked() -> None:
    assert check_events([("MODEL_VERSION", "CREATED"), ("model_version", "created")]) == (
        "model_version.created",
    )
    with pytest.raises(InvalidInput, match=r"delivers no 'registered_model\.created'"):
        check_events([("REGISTERED_MODEL", "CREATED")])
    with pytest.raises(InvalidInput, match="not an MLflow webhook event"):
        check_events([("spaceship", "launched")])
    with pytest.raises(InvalidInput, match="at least one"):
        check_events([])
