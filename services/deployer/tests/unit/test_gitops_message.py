from __future__ import annotations

import uuid

import pytest
from mlplane_deployer.domain.errors import InvalidChangeMessage
from mlplane_deployer.gitops.credentials import GitCredentials
from mlplane_deployer.gitops.message import ChangeAction, DeploymentChange, parse_trailers
from pydantic import SecretStr


def _change(**changes: object) -> DeploymentChange:
    fields: dict[str, object] = {
        "change_id": str(uuid.uuid4()),
        "action": ChangeAction.DEPLOY,
        "team": "acme",
        "model": "fraud",
        "version": 8,
        "digest": "sha256:" + "a" * 64,
        "environment": "prod",
        "directory": "teams/acme/fraud/prod",
        "requested_by": "alice",
        "approvals": ("bob",),
        "policy_version": 4,
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
    }
    fields.update(changes)
    return DeploymentChange(**fields)  # type: ignore[arg-type]


class TestMessage:
    def test_message_carries_every_field_as_a_trailer(self) -> None:
        change = _change()
        trailers = parse_trailers(change.message())
        assert change.message().splitlines()[0] == "deploy acme/fraud v8 to prod"
        assert trailers == {
            "Mlplane-Action": "deploy",
            "Mlplane-Change-Id": change.change_id,
            "Mlplane-Team": "acme",
            "Mlplane-Model": "fraud",
            "Mlplane-Version": "8",
            "Mlplane-Digest": "sha256:" + "a" * 64,
            "Mlplane-Environment": "prod",
            "Mlplane-Requested-By": "alice",
            "Mlplane-Approved-By": "bob",
            "Mlplane-Policy-Version": "4",
            "Mlplane-Trace-Id": "0af7651916cd43dd8448eb211c80319c",
        }

    def test_rollback_names_the_commit_it_reverts(self) -> None:
        message = _change(action=ChangeAction.ROLLBACK, version=7).message(reverts="f" * 40)
        assert message.startswith("roll back acme/fraud in prod to v7")
        first = _change(action=ChangeAction.ROLLBACK, version=7, removes=True).message()
        assert first.startswith("roll back acme/fraud in prod removing v7\n")
        assert parse_trailers(message)["Mlplane-Reverts"] == "f" * 40

    @pytest.mark.parametrize(
        "changes",
        [
            {"requested_by": "alice\nMlplane-Approved-By: mallory"},
            {"approvals": ("bob\rx",)},
            {"approvals": ("bob, carol",)},
            {"change_id": "../x"},
        ],
    )
    def test_a_value_that_could_forge_a_field_is_refused(self, changes: dict[str, object]) -> None:
        with pytest.raises(InvalidChangeMessage):
            _change(**changes)


class TestRedaction:
    def test_token_basic_header_and_url_userinfo_are_redacted(self) -> None:
        credentials = GitCredentials(username="bot", token=SecretStr("s3cr3t-token"))
        (basic,) = [s for s in credentials.secrets() if s != "s3cr3t-token"]
        text = f"fatal: https://bot:pw@git.example.com/x s3cr3t-token Basic {basic}"
        redacted = credentials.redact(text)
        assert "s3cr3t-token" not in redacted
        assert basic not in redacted
        assert "pw@" not in redacted
        assert "https://***@git.example.com/x" in redacted

    def test_token_goes_to_git_as_config_environment_not_arguments(self) -> None:
        env = GitCredentials(token=SecretStr("abc")).environment()
        keys = {
            env[k]: env[k.replace("KEY", "VALUE")] for k in env if k.startswith("GIT_CONFIG_KEY_")
        }
        assert keys["http.extraHeader"].startswith("Authorization: Basic ")
        assert env["GIT_TERMINAL_PROMPT"] == "0"
