from __future__ import annotations

from pathlib import Path

import pytest
from mlplane_deployer.settings import DeployerSettings
from pydantic import SecretStr, ValidationError


class TestDeployerSettings:
    def test_https_remote_with_a_token(self) -> None:
        settings = DeployerSettings(
            gitops_remote="https://git.example.com/gitops.git", gitops_token=SecretStr("t0k")
        )
        assert "t0k" not in repr(settings)
        assert settings.git_credentials().secrets()

    def test_password_in_the_remote_url_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="gitops_token instead"):
            DeployerSettings(gitops_remote="https://bot:s3cret@git.example.com/gitops.git")

    def test_token_over_plain_http_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="https"):
            DeployerSettings(
                gitops_remote="http://git.example.com/g.git", gitops_token=SecretStr("t")
            )

    def test_ssh_key_needs_known_hosts(self, tmp_path: Path) -> None:
        with pytest.raises(ValidationError, match="known_hosts"):
            DeployerSettings(
                gitops_remote="git@git.example.com:org/gitops.git",
                gitops_ssh_key_file=tmp_path / "key",
            )
        DeployerSettings(
            gitops_remote="ssh://git@git.example.com/org/gitops.git",
            gitops_ssh_key_file=tmp_path / "key",
            gitops_known_hosts_file=tmp_path / "known_hosts",
        )

    def test_kubernetes_older_than_1_28_is_refused(self) -> None:
        with pytest.raises(ValidationError):
            DeployerSettings(kubernetes_version="1.27")


def test_local_remotes_are_made_absolute_for_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    embedded = DeployerSettings().remote_for(Path(".data/deployer/gitops.git"))
    assert embedded == str(tmp_path / ".data/deployer/gitops.git")
    assert DeployerSettings(gitops_remote="repos/g.git").remote_for(Path("x")) == str(
        tmp_path / "repos/g.git"
    )
    url = "https://git.example.com/platform/gitops.git"
    assert DeployerSettings(gitops_remote=url).remote_for(Path("x")) == url
    scp = "git@git.example.com:platform/gitops.git"
    assert DeployerSettings(gitops_remote=scp).remote_for(Path("x")) == scp
