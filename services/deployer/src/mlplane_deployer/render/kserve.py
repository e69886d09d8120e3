"""A KServe `InferenceService` (serving.kserve.io/v1beta1) for one model and environment.

KServe runs the canary itself: `canaryTrafficPercent` sends that share to the
latest revision (this spec) and the rest to the previous ready one, so a canary
renders only the new version.
"""

from __future__ import annotations

from typing import Any

from mlplane_deployer.render import labels as lb
from mlplane_deployer.render.spec import RenderSpec


def inference_service(spec: RenderSpec) -> dict[str, Any]:
    workload = spec.workload
    container: dict[str, Any] = {
        # KServe finds the serving container by this name.
        "name": "kserve-container",
        "image": workload.image.reference,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": spec.port, "protocol": "TCP"}],
        "env": lb.environment(spec, workload),
        "resources": lb.resources(spec),
        "readinessProbe": {
            "httpGet": {"path": spec.readiness_path, "port": spec.port},
            "periodSeconds": 5,
        },
        "livenessProbe": {
            "httpGet": {"path": spec.liveness_path, "port": spec.port},
            "periodSeconds": 10,
        },
        "securityContext": lb.container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
    }
    predictor: dict[str, Any] = {
        "minReplicas": spec.min_replicas,
        "maxReplicas": spec.max_replicas,
        "scaleMetric": "cpu",
        "scaleTarget": spec.target_cpu_percent,
    }
    if spec.canary is not None:
        predictor["canaryTrafficPercent"] = spec.canary.weight
    predictor |= {
        "automountServiceAccountToken": False,
        "securityContext": lb.pod_security_context(),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": spec.model,
            "labels": lb.labels(spec, "stable", workload),
            "annotations": {"serving.kserve.io/enable-prometheus-scraping": "true"},
        },
        "spec": {"predictor": predictor},
    }
