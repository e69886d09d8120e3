"""Misconfiguration checks of rendered Kubernetes manifests, by real Trivy's embedded checks."""

from __future__ import annotations

import pytest
from mlplane_contracts.events import Severity
from mlplane_scanner.domain.findings import FindingKind
from mlplane_scanner.trivy import TrivyRunner

IMAGE = "registry.example/models/fraud@sha256:" + "0" * 64


def deployment(security_context: str, *, name: str = "fraud-model") -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: models
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
        - name: server
          image: {IMAGE}
          securityContext:
{security_context}
"""


PRIVILEGED = "            privileged: true\n"
HARDENED = """\
            privileged: false
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            runAsUser: 20000
            runAsGroup: 20000
            capabilities: {drop: [ALL]}
            seccompProfile: {type: RuntimeDefault}
"""


class TestScanConfigFiles:
    async def test_a_privileged_deployment_fails_the_privileged_check(
        self, trivy_runner: TrivyRunner
    ) -> None:
        findings = await trivy_runner.scan_config_files(
            {"overlays/prod/deployment.yaml": deployment(PRIVILEGED)}
        )

        privileged = [f for f in findings if f.id == "KSV-0017"]
        assert len(privileged) == 1
        assert privileged[0].kind is FindingKind.MISCONFIGURATION
        assert privileged[0].severity is Severity.HIGH
        assert privileged[0].target == "overlays/prod/deployment.yaml"
        assert "fraud-model" in privileged[0].title

    async def test_a_hardened_deployment_does_not_fail_it(self, trivy_runner: TrivyRunner) -> None:
        findings = await trivy_runner.scan_config_files(
            {"a.yaml": deployment(PRIVILEGED, name="loose"), "b.yaml": deployment(HARDENED)}
        )

        failed = {(f.target, f.id) for f in findings}
        assert ("a.yaml", "KSV-0017") in failed
        assert ("b.yaml", "KSV-0017") not in failed
        assert ("b.yaml", "KSV-0014") not in failed  # read-only root filesystem
        assert len([f for f in findings if f.target == "b.yaml"]) < len(
            [f for f in findings if f.target == "a.yaml"]
        )

    async def test_no_manifests_no_findings(self, trivy_runner: TrivyRunner) -> None:
        assert await trivy_runner.scan_config_files({}) == []

    @pytest.mark.parametrize("name", ["/etc/passwd", "../escape.yaml", "a/../../b.yaml", ""])
    async def test_file_names_that_leave_the_directory_are_refused(
        self, trivy_runner: TrivyRunner, name: str
    ) -> None:
        with pytest.raises(ValueError, match="relative path"):
            await trivy_runner.scan_config_files({name: deployment(PRIVILEGED)})
