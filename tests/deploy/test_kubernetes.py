"""deploy/: each overlay rendered by the real Kustomize, every object valid for Kubernetes 1.28.

Built-in kinds are validated strictly against the schemas `kubernetes-validate` ships,
the Argo CD Application and the ServiceMonitor against the CRD schemas the deployer
keeps (its validator, `mlplane_deployer.render.validate`), and the ExternalSecret
against the CRD excerpt kept in deploy/crds, closed the same way (unknown fields
refused). Then the shape asked of the platform's objects is checked.
"""

from __future__ import annotations

import copy
import functools
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from mlplane_deployer.render.validate import _close, errors_of

from .conftest import REPO, SERVICES

KUBERNETES_VERSION = "1.28"
OVERLAYS = ("dev", "prod")
NAMESPACES = {"dev": "mlplane-dev", "prod": "mlplane"}
PER_SERVICE_KINDS = (
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "ServiceMonitor",
)


def render(path: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["kubectl", "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc is not None]


@functools.cache
def _kept_crds() -> dict[tuple[str, str], jsonschema.Validator]:
    found = {}
    for path in sorted((REPO / "deploy" / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
            schema["properties"]["metadata"] = {"type": "object"}
            found[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(_close(schema))
    return found


def schema_errors(obj: dict[str, Any]) -> list[str]:
    validator = _kept_crds().get((obj.get("apiVersion", ""), obj.get("kind", "")))
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    if validator is not None:
        return [
            f"{name} at {'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(obj)
        ]
    return [str(e) for e in errors_of(obj, name, KUBERNETES_VERSION)]


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    return tuple(render(REPO / "deploy" / "overlays" / overlay))


def by_kind(objects: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_is_valid_for_kubernetes_1_28(overlay: str) -> None:
    objects = rendered(overlay)
    errors = [error for obj in objects for error in schema_errors(obj)]
    assert not errors, "\n".join(errors)
    assert {o["metadata"].get("namespace") for o in objects} == {NAMESPACES[overlay]}


def test_the_argo_cd_applications_are_valid_and_deploy_the_overlays() -> None:
    applications = render(REPO / "deploy" / "argocd")
    errors = [error for obj in applications for error in schema_errors(obj)]
    assert not errors, "\n".join(errors)
    paths = {a["metadata"]["name"]: a["spec"]["source"]["path"] for a in applications}
    assert paths == {f"mlplane-{o}": f"deploy/overlays/{o}" for o in OVERLAYS}
    for application in applications:
        overlay = application["spec"]["source"]["path"].rsplit("/", 1)[1]
        assert (REPO / "deploy" / "overlays" / overlay / "kustomization.yaml").exists()
        assert application["spec"]["destination"]["namespace"] == NAMESPACES[overlay]


def test_the_validation_refuses_a_broken_object() -> None:
    # The checks above can fail: an unknown field, a wrong type, an unknown CRD field.
    deployment = copy.deepcopy(by_kind(rendered("prod"), "Deployment")["registry"])
    deployment["spec"]["replica"] = 2
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "x"
    assert len(schema_errors(deployment)) >= 2
    secret = copy.deepcopy(by_kind(rendered("prod"), "ExternalSecret")["mlplane-database"])
    secret["spec"]["secretStoreRef"]["kind"] = "Vault"
    secret["spec"]["refresh"] = "1h"
    assert len(schema_errors(secret)) == 2
    monitor = copy.deepcopy(by_kind(rendered("prod"), "ServiceMonitor")["registry"])
    monitor["spec"]["endpoints"][0]["scheme"] = "gopher"
    assert schema_errors(monitor)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_has_its_objects_hardened_and_probed(overlay: str) -> None:
    objects = rendered(overlay)
    for kind in PER_SERVICE_KINDS:
        names = set(by_kind(objects, kind))
        assert set(SERVICES) <= names, (kind, set(SERVICES) - names)
    for service in SERVICES:
        deployment = by_kind(objects, "Deployment")[service]
        # The HorizontalPodAutoscaler owns the replica count (a sync would reset it).
        assert "replicas" not in deployment["spec"]
        hpa = by_kind(objects, "HorizontalPodAutoscaler")[service]
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": service,
        }
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["args"] == ["serve", service]
        assert container["image"].startswith(f"registry.example.com/mlplane/{service}:")
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert mounts == {"/var/lib/mlplane", "/tmp"}
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert set(container["resources"]) == {"requests", "limits"}
        secrets = {e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e}
        made = set(by_kind(objects, "ExternalSecret"))
        assert secrets <= made, secrets - made
        # A service holds its own identity key, never the gateway's signing secret.
        if service != "gateway":
            assert f"mlplane-{service}-identity" in secrets
            assert "mlplane-gateway-keys" not in secrets
        monitor = by_kind(objects, "ServiceMonitor")[service]
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    job = by_kind(objects, "Job")["mlplane-migrate"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
    ingress = by_kind(objects, "Ingress")["gateway"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "gateway"
    # The gateway reaches each service at the address its Service gives.
    gateway_env = {
        e["name"]: e.get("value")
        for e in by_kind(objects, "Deployment")["gateway"]["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
    }
    for service in SERVICES:
        if service == "gateway":
            continue
        port = by_kind(objects, "Service")[service]["spec"]["ports"][0]["port"]
        assert gateway_env[f"MLPLANE_GATEWAY_{service.upper()}_URL"] == f"http://{service}:{port}"
