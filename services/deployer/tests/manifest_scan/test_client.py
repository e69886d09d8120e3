"""The manifest-scan client against the real scanner (real Trivy over real HTTP): what it
sends, how it signs, and what it makes of the answers."""

from __future__ import annotations

import httpx
import pytest
from mlplane_deployer.domain.environments import ServingKind
from mlplane_deployer.manifest_scan import (
    ManifestScanFailed,
    ManifestScanGate,
    ManifestScanRefused,
    ScannerManifestClient,
    ScannerUnavailable,
    scanner_environment,
)
from mlplane_deployer.render import render_validated
from mlplane_deployer.render.spec import ImageByDigest, RenderSpec, Workload
from mlplane_runtime.forwarded_identity import derive_identity_key
from mlplane_testing.http_server import free_port
from mlplane_testing.identity import TEST_IDENTITY_SECRET

SCANNER_KEY = derive_identity_key(TEST_IDENTITY_SECRET.encode(), "scanner")
DIGEST = "sha256:" + "b" * 64
PRIVILEGED = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "fraud", "namespace": "ml"},
    "spec": {
        "selector": {"matchLabels": {"app": "fraud"}},
        "template": {
            "metadata": {"labels": {"app": "fraud"}},
            "spec": {
                "containers": [
                    {
                        "name": "server",
                        "image": f"harbor.acme.io/ml/fraud@{DIGEST}",
                        "securityContext": {"privileged": True},
                    }
                ]
            },
        },
    },
}


def rendered(serving: ServingKind) -> list[tuple[str, dict[str, object]]]:
    spec = RenderSpec(
        team="acme",
        model="fraud",
        environment="prod",
        workload=Workload(3, ImageByDigest("harbor.acme.io/ml/fraud", DIGEST)),
        serving=serving,
    )
    return [(path, dict(obj)) for path, obj in render_validated(spec).objects]


@pytest.mark.parametrize("serving", [ServingKind.KUSTOMIZE, ServingKind.KSERVE])
async def test_what_the_deployer_renders_passes_the_default_policy(
    scanner_url: str, serving: ServingKind
) -> None:
    client = ScannerManifestClient(scanner_url, SCANNER_KEY)
    result = await client.scan("acme", "prod", rendered(serving))
    assert (result.passed, result.reasons, result.environment) == (True, (), "prod")
    assert result.policy_version == 0  # the team never wrote a scanner policy


async def test_a_privileged_container_fails_with_reasons_naming_the_file(
    scanner_url: str,
) -> None:
    gate = ManifestScanGate(ScannerManifestClient(scanner_url, SCANNER_KEY))
    objects = [("teams/acme/fraud/prod/base/deployment.yaml", PRIVILEGED)]
    with pytest.raises(ManifestScanFailed) as failed:
        await gate.check("acme", "prod", objects)
    reasons = failed.value.extensions["errors"]
    privileged = [r for r in reasons if "rivileged" in r]
    assert privileged, reasons
    assert "in teams/acme/fraud/prod/base/deployment.yaml" in privileged[0]
    assert failed.value.status == 409
    assert failed.value.retryable is False


async def test_an_environment_the_scanner_does_not_know_is_judged_as_prod(
    scanner_url: str,
) -> None:
    client = ScannerManifestClient(scanner_url, SCANNER_KEY)
    result = await client.scan("acme", "canary-eu", rendered(ServingKind.KUSTOMIZE))
    assert result.environment == "prod"
    assert scanner_environment("staging") == "staging"


async def test_a_key_the_scanner_does_not_hold_is_retried_and_says_which_setting(
    scanner_url: str,
) -> None:
    client = ScannerManifestClient(scanner_url, derive_identity_key(b"x" * 32, "scanner"))
    with pytest.raises(ScannerUnavailable) as refused:
        await client.scan("acme", "dev", rendered(ServingKind.KUSTOMIZE))
    assert "answered 401" in refused.value.detail
    assert "MLPLANE_DEPLOYER_SCANNER_IDENTITY_KEY" in refused.value.detail
    assert refused.value.retryable is True


async def test_manifests_the_scanner_refuses_are_not_retried(scanner_url: str) -> None:
    client = ScannerManifestClient(scanner_url, SCANNER_KEY)
    many = [(f"f{i}.yaml", {"apiVersion": "v1", "kind": "ConfigMap"}) for i in range(201)]
    with pytest.raises(ManifestScanRefused) as refused:
        await client.scan("acme", "dev", many)
    assert "(422)" in refused.value.detail
    assert "at most 200 manifests" in refused.value.detail


async def test_a_scanner_that_is_not_there_is_unavailable() -> None:
    client = ScannerManifestClient(f"http://127.0.0.1:{free_port()}", SCANNER_KEY)
    with pytest.raises(ScannerUnavailable) as down:
        await client.scan("acme", "dev", rendered(ServingKind.KUSTOMIZE))
    assert "did not answer the manifest scan: ConnectError" in down.value.detail


def answering(status: int, body: bytes) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, content=body))


@pytest.mark.parametrize(
    ("status", "body", "raised"),
    [
        (503, b"{}", ScannerUnavailable),
        (500, b"oops", ScannerUnavailable),
        (429, b"{}", ScannerUnavailable),
        (200, b"<html>not a scan</html>", ScannerUnavailable),
        (200, b'{"verdict": "passed"}', ScannerUnavailable),
        (413, b'{"detail": "too large"}', ManifestScanRefused),
    ],
)
async def test_answers_are_sorted_into_retried_and_refused(
    status: int, body: bytes, raised: type[Exception]
) -> None:
    # Pure mapping of answers the real scanner is not made to give here.
    client = ScannerManifestClient(
        "http://scanner.test", SCANNER_KEY, transport=answering(status, body)
    )
    with pytest.raises(raised):
        await client.scan("acme", "dev", rendered(ServingKind.KUSTOMIZE))
