"""The deployer's own settings (prefix `MLPLANE_DEPLOYER_`); shared ones stay in RuntimeSettings.

The GitOps remote and its credentials, the Kubernetes version rendered manifests
are validated against, and the job worker's limits.
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
