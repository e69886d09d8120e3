"""Rendered Kubernetes manifests scanned by real Trivy for the deployer."""

from __future__ import annotations

from .conftest import ScannerUnderTest

PRIVILEGED_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: fraud
spec:
  selector:
    matchLabels: {app: fraud}
  template:
    metadata:
      labels: {app: fraud}
    spec:
      containers:
        - name: server
          image: harbor.acme.io/ml/fraud@sha256:%s
          securityContext:
            privileged: true
""" % ("a" * 64)


class TestManifests:
    async def test_a_privileged_deployment_fails_its_misconfiguration_checks(
        self, scanner: ScannerUnderTest
    ) -> None:
        answer = await scanner.http.post(
            "/manifests/scan",
            content=PRIVILEGED_DEPLOYMENT,
            headers={"Content-Type": "application/yaml"},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["verdict"] == "failed"
        privileged = [f for f in body["findings"] if "rivileged" in f["title"]]
        assert privileged, body["findings"]
        assert privileged[0]["target"] == "manifest-0.yaml"
        assert any(privileged[0]["id"] in reason for reason in body["reasons"])

    async def test_json_manifests_are_read_too(self, scanner: ScannerUnderTest) -> None:
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "fraud"},
            "spec": {"ports": [{"port": 80}]},
        }
        answer = await scanner.http.post("/manifests/scan", json=[service])
        assert answer.status_code == 200, answer.text
        assert answer.json()["verdict"] == "passed"
