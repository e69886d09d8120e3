"""The deployer's own settings (prefix `MLPLANE_DEPLOYER_`); shared ones stay in RuntimeSettings.

The GitOps remote and its credentials, the Kubernetes version rendered manifests
are validated against, the job worker's limits, and the cluster: with one of
`kubeconfig`, `kube_in_cluster` or `kube_api_url` set, the deployer ensures an Argo CD
`Application` per model and environment and follows it; with none, deployments stop
at `committed`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplane_deployer.gitops.credentials import GitCredentials

_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:")
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_NAMESPACE_FIELDS = frozenset({"team", "model", "environment"})


class DeployerSettings(BaseSettings):
    """Validated at start-up: a bad value stops the start naming the variable."""

    model_config = SettingsConfigDict(env_prefix="MLPLANE_DEPLOYER_", extra="ignore")

    gitops_remote: str | None = None
    """The GitOps repository: a local path, `https://...`, `ssh://...` or `git@host:path`.
    Unset: a bare repository under the data directory (embedded mode)."""
    gitops_branch: str = Field(default="main", pattern=r"^[A-Za-z0-9._/-]{1,200}$")
    gitops_workdir: Path | None = None
    """This replica's working clone; unset: `<data dir>/deployer/gitops`."""
    gitops_username: str | None = None
    gitops_token: SecretStr | None = None
    """HTTPS only; sent as an Authorization header, never put in the URL."""
    gitops_ssh_key_file: Path | None = None
    gitops_known_hosts_file: Path | None = None
    """SSH only; host keys are checked strictly against this file."""
    gitops_push_attempts: int = Field(default=20, ge=1, le=100)
    kubernetes_version: str = Field(default="1.28", pattern=r"^1\.(2[89]|[3-9][0-9])$")
    """Rendered manifests validate against this Kubernetes version's schemas (1.28+)."""
    max_concurrent_jobs: int = Field(default=2, ge=1, le=64)
    """Deployments (render, validate, commit, push) one process runs at once."""
    job_attempts: int = Field(default=5, ge=1, le=100)
    """Tries of a deployment whose failures may pass (the remote did not answer)."""
    retry_delay_s: float = Field(default=5.0, ge=0, le=3600)
    """Wait before a deployment's second try, doubling after."""
    job_timeout_s: float = Field(default=300.0, gt=0, le=3600)
    lease_s: float = Field(default=60.0, gt=0, le=3600)
    poll_interval_s: float = Field(default=5.0, gt=0, le=3600)
    manifest_scan: Literal["on", "off"] = "on"
    """`off` commits rendered manifests without the scanner's manifest scan, warning on each
    deployment; `on` (default) scans them first and refuses to start with no scanner known
    (see `manifest_scan_target`)."""
    scanner_url: AnyHttpUrl | None = None
    """The scanner's address (`http://scanner:8083`: its mount `/scanner` is added), or a
    URL with a path taken as it is (a reverse proxy's). Unset in embedded mode with the
    scanner installed: this platform's own address."""
    scanner_identity_key: SecretStr | None = None
    """Hex of the scanner's identity key (its `MLPLANE_SCANNER_IDENTITY_KEY`), which the
    deployer signs its manifest-scan calls with; unset: derived from the platform's
    identity secret (`MLPLANE_IDENTITY_SECRET`, or the dev secret of `make run`)."""
    scanner_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    """How long one manifest scan may take (Trivy runs in the scanner meanwhile)."""

    kubeconfig: Path | None = None
    """The cluster Argo CD runs in, by a kubeconfig file (`kube_context` picks a context)."""
    kube_context: str | None = None
    kube_in_cluster: bool = False
    """The cluster the deployer runs in, by its pod's service account."""
    kube_api_url: str | None = None
    """A plain URL of the API server (`kubectl proxy`, a test stand-in): no credentials."""
    argocd_namespace: str = Field(default="argocd", pattern=_DNS_LABEL)
    argocd_project: str = Field(default="default", pattern=r"^[A-Za-z0-9._-]{1,253}$")
    argocd_destination_server: str = "https://kubernetes.default.svc"
    argocd_repo_url: str | None = None
    """The GitOps repository as Argo CD reaches it; unset: `gitops_remote`."""
    destination_namespace: str = "{team}-{environment}"
    """Where a model's objects go: a pattern of `{team}`, `{model}` and `{environment}`."""
    health_timeout_s: float = Field(default=600.0, gt=0, le=86_400)
    """How long a commit may take to be healthy before the deployment `failed`."""
    health_timeouts: dict[str, float] = Field(default_factory=dict)
    """Per environment, replacing `health_timeout_s` (JSON: `{"prod": 1800}`)."""
    cluster_resync_s: float = Field(default=30.0, gt=0, le=3600)
    """How often each replica reloads what it follows from the database (restarts,
    commits landed by other replicas)."""

    @property
    def cluster_configured(self) -> bool:
        return self.kubeconfig is not None or self.kube_in_cluster or self.kube_api_url is not None

    def health_timeout_for(self, environment: str) -> float:
        return self.health_timeouts.get(environment, self.health_timeout_s)

    def destination_namespace_for(self, team: str, model: str, environment: str) -> str:
        return self.destination_namespace.format(team=team, model=model, environment=environment)

    @model_validator(mode="after")
    def _one_cluster(self) -> DeployerSettings:
        ways = [self.kubeconfig is not None, self.kube_in_cluster, self.kube_api_url is not None]
        if sum(ways) > 1:
            raise ValueError("set one of kubeconfig, kube_in_cluster and kube_api_url")
        if self.kube_api_url is not None and urlsplit(self.kube_api_url).scheme not in (
            "http",
            "https",
        ):
            raise ValueError("kube_api_url is an http(s) URL")
        fields = set(_PLACEHOLDER.findall(self.destination_namespace))
        if not fields <= _NAMESPACE_FIELDS:
            raise ValueError("destination_namespace names only {team}, {model} and {environment}")
        sample = self.destination_namespace_for("t", "m", "e")
        if not re.match(_DNS_LABEL, sample):
            raise ValueError("destination_namespace does not make a DNS label")
        for environment, timeout in self.health_timeouts.items():
            if not 0 < timeout <= 86_400:
                raise ValueError(f"health_timeouts[{environment}] is 0 to 86400 seconds")
        return self

    @property
    def embedded(self) -> bool:
        """No GitOps remote configured: a bare repository under the data directory."""
        return self.gitops_remote is None

    @model_validator(mode="after")
    def _credentials_fit_the_remote(self) -> DeployerSettings:
        remote = self.gitops_remote or ""
        scheme = urlsplit(remote).scheme if "://" in remote else ""
        is_ssh = scheme == "ssh" or bool(_SCP_LIKE.match(remote))
        if scheme in ("http", "https") and urlsplit(remote).password:
            raise ValueError("gitops_remote carries a password: set gitops_token instead")
        if self.gitops_token is not None and scheme != "https":
            raise ValueError("gitops_token is for an https:// gitops_remote")
        if self.gitops_ssh_key_file is not None:
            if not is_ssh:
                raise ValueError("gitops_ssh_key_file is for an SSH gitops_remote")
            if self.gitops_known_hosts_file is None:
                raise ValueError("an SSH gitops_remote needs gitops_known_hosts_file")
        return self

    def remote_for(self, embedded: Path) -> str:
        """The remote git is given: `embedded` when none is configured; a local path made
        absolute (git runs inside the working clone, where a relative one means nothing)."""
        remote = self.gitops_remote
        if remote is None:
            return str(embedded.resolve())
        if "://" in remote or _SCP_LIKE.match(remote):
            return remote
        return str(Path(remote).resolve())

    def git_credentials(self) -> GitCredentials:
        return GitCredentials(
            username=self.gitops_username,
            token=self.gitops_token,
            ssh_key_file=self.gitops_ssh_key_file,
            known_hosts_file=self.gitops_known_hosts_file,
        )
