"""Keys, webhook secrets and tokens never reach the logs (access log included)."""

from __future__ import annotations

import logging

import pytest
from mlplane_gateway.ingress.webhooks import github_signature

from ..conftest import BOOTSTRAP_KEY, Harness, SigningKey, claims
from ..payloads import raw, workflow_run


async def test_credentials_are_not_logged(
    harness: Harness, team: str, rsa_key: SigningKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await harness.create_key(team, ["admin"])
    key = created["key"]
    secret = await harness.webhook_secret(team)
    token = rsa_key.sign(claims(team, "admin"))
    body = raw(workflow_run())
    signature = github_signature(secret, body)
    await harness.client.get("/v1/keys", headers=harness.bearer(key))
    await harness.client.get("/v1/keys", headers=harness.bearer(token))
    await harness.client.get("/v1/keys", headers=harness.bearer(key[:-1] + "x"))
    await harness.client.post(
        f"/v1/webhooks/github/{team}",
        content=body,
        headers={
            "X-GitHub-Event": "workflow_run",
            "X-GitHub-Delivery": "d-log",
            "X-Hub-Signature-256": signature,
        },
    )
    await harness.client.delete(f"/v1/keys/{created['id']}", headers=harness.bearer(key))
    await harness.client.get("/v1/keys", headers=harness.bearer(key))  # revoked: 401

    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "/v1/keys" in logged  # the access log ran
    for secret_value in (key, key.split("_", 2)[2], secret, token, BOOTSTRAP_KEY, signature):
        assert secret_value not in logged
