"""Labels and the pod and container settings every rendered workload shares."""

from __future__ import annotations

from typing import Any

from mlplane_deployer.render.spec import RenderSpec, Workload

NAME = "app.kubernetes.io/name"
TRACK = "mlplane.io/track"
RUN_AS = 10001
CONTAINER = "model-server"


def selector(spec: RenderSpec, track: str) -> dict[str, str]:
    # Selectors are immutable on a Deployment: never put the version in them.
    return {NAME: spec.model, TRACK: track}


def labels(spec: RenderSpec, track: str, workload: Workload | None = None) -> dict[str, str]:
    result = {
        NAME: spec.model,
        "app.kubernetes.io/part-of": "mlplane",
        "app.kubernetes.io/managed-by": "mlplane-deployer",
        "mlplane.io/team": spec.team,
        "mlplane.io/environment": spec.environment,
        TRACK: track,
    }
    if workload is not None:
        result["app.kubernetes.io/version"] = str(workload.version)
    return result


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "capabilities": {"drop": ["ALL"]},
    }


def resources(spec: RenderSpec) -> dict[str, Any]:
    r = spec.resources
    return {
        "requests": {"cpu": r.cpu_request, "memory": r.memory_request},
        "limits": {"cpu": r.cpu_limit, "memory": r.memory_limit},
    }


def probes(spec: RenderSpec) -> dict[str, Any]:
    def http(path: str) -> dict[str, Any]:
        return {"path": path, "port": "http"}

    return {
        "startupProbe": {
            "httpGet": http(spec.readiness_path),
            "periodSeconds": 5,
            "failureThreshold": 60,
        },
        "readinessProbe": {
            "httpGet": http(spec.readiness_path),
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": http(spec.liveness_path),
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
    }


def environment(spec: RenderSpec, workload: Workload) -> list[dict[str, str]]:
    return [
        {"name": "MLPLANE_MODEL", "value": spec.model},
        {"name": "MLPLANE_MODEL_VERSION", "value": str(workload.version)},
        {"name": "MLPLANE_ENVIRONMENT", "value": spec.environment},
    ]
