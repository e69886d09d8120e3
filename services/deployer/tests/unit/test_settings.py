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


class TestClusterSettings:
    def test_no_cluster_is_the_default(self) -> None:
        assert not DeployerSettings().cluster_configured

    def test_a_kubeconfig_in_cluster_or_an_api_url_configures_one(self, tmp_path: Path) -> None:
        assert DeployerSettings(kubeconfig=tmp_path / "config").cluster_configured
        assert DeployerSettings(kube_in_cluster=True).cluster_configured
        assert DeployerSettings(kube_api_url="http://127.0.0.1:8001").cluster_configured

    def test_two_ways_to_the_cluster_are_refused(self, tmp_path: Path) -> None:
        with pytest.raises(ValidationError, match="one of"):
            DeployerSettings(kubeconfig=tmp_path / "config", kube_in_cluster=True)

    def test_health_timeouts_per_environment_replace_the_global_one(self) -> None:
        settings = DeployerSettings(health_timeout_s=300, health_timeouts={"prod": 1800})
        assert settings.health_timeout_for("prod") == 1800
        assert settings.health_timeout_for("dev") == 300
        with pytest.raises(ValidationError, match="health_timeouts"):
            DeployerSettings(health_timeouts={"prod": 0})

    def test_the_destination_namespace_pattern_names_known_fields_and_makes_a_label(
        self,
    ) -> None:
        settings = DeployerSettings(destination_namespace="models-{team}-{environment}")
        assert settings.destination_namespace_for("acme", "fraud", "prod") == "models-acme-prod"
        with pytest.raises(ValidationError, match="names only"):
            DeployerSettings(destination_namespace="{tenant}")
        with pytest.raises(ValidationError, match="DNS label"):
            DeployerSettings(destination_namespace="Models_{team}")

    def test_settings_come_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MLPLANE_DEPLOYER_KUBE_IN_CLUSTER", "true")
        monkeypatch.setenv("MLPLANE_DEPLOYER_ARGOCD_NAMESPACE", "gitops")
        monkeypatch.setenv("MLPLANE_DEPLOYER_HEALTH_TIMEOUTS", '{"prod": 900}')
        settings = DeployerSettings()
        assert settings.cluster_configured
        assert settings.argocd_namespace == "gitops"
        assert settings.health_timeout_for("prod") == 900
