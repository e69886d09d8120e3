"""Plain Kubernetes objects for one model and environment, laid out for Kustomize.

Each track (`stable`, and `canary` while one runs) gets a Deployment, a Service,
a HorizontalPodAutoscaler and a PodDisruptionBudget; the model gets one
NetworkPolicy and one ServiceMonitor that select every track, and an HTTPRoute
when the environment names a Gateway (the canary's traffic split).
"""

from __future__ import annotations

from typing import Any

from mlplane_deployer.render import labels as lb
from mlplane_deployer.render.spec import RenderSpec, Workload

STABLE = "stable"
CANARY = "canary"
SERVICE_PORT = 80


def workload_name(spec: RenderSpec, track: str) -> str:
    return spec.model if track == STABLE else f"{spec.model}-{track}"


def tracks(spec: RenderSpec) -> list[tuple[str, Workload]]:
    """(track, workload) pairs: the deployed version alone, or stable beside its canary."""
    if spec.canary is None:
        return [(STABLE, spec.workload)]
    return [(STABLE, spec.canary.stable), (CANARY, spec.workload)]


def deployment(spec: RenderSpec, track: str, workload: Workload) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": lb.CONTAINER,
        "image": workload.image.reference,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "env": lb.environment(spec, workload),
        "resources": lb.resources(spec),
        **lb.probes(spec),
        "securityContext": lb.container_security_context(),
        # The root filesystem is read-only; servers still need a scratch directory.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": workload_name(spec, track),
            "labels": lb.labels(spec, track, workload),
        },
        "spec": {
            # No `replicas`: the HorizontalPodAutoscaler owns it, and a value here
            # would fight it on every sync.
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": lb.selector(spec, track)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": lb.labels(spec, track, workload)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": lb.pod_security_context(),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
                },
            },
        },
    }


def service(spec: RenderSpec, track: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": workload_name(spec, track), "labels": lb.labels(spec, track)},
        "spec": {
            "type": "ClusterIP",
            "selector": lb.selector(spec, track),
            "ports": [
                {"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def autoscaler(spec: RenderSpec, track: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": workload_name(spec, track), "labels": lb.labels(spec, track)},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": workload_name(spec, track),
            },
            "minReplicas": spec.min_replicas,
            "maxReplicas": spec.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": spec.target_cpu_percent,
                        },
                    },
                }
            ],
        },
    }


def disruption_budget(spec: RenderSpec, track: str) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": workload_name(spec, track), "labels": lb.labels(spec, track)},
        # maxUnavailable, not minAvailable: with one replica, minAvailable 1 blocks drains.
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": lb.selector(spec, track)}},
    }


def network_policy(spec: RenderSpec) -> dict[str, Any]:
    namespaces = sorted({*spec.ingress_namespaces, spec.monitoring_namespace})
    if spec.gateway is not None:
        namespaces = sorted({*namespaces, spec.gateway.namespace})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": spec.model, "labels": lb.labels(spec, "all")},
        "spec": {
            "podSelector": {"matchLabels": {lb.NAME: spec.model}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchExpressions": [
                                    {
                                        "key": "kubernetes.io/metadata.name",
                                        "operator": "In",
                                        "values": namespaces,
                                    }
                                ]
                            }
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": spec.port}],
                }
            ],
        },
    }


def service_monitor(spec: RenderSpec) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": spec.model, "labels": lb.labels(spec, "all")},
        "spec": {
            "selector": {"matchLabels": {lb.NAME: spec.model}},
            "endpoints": [
                {"port": "http", "path": spec.metrics_path, "interval": "30s", "scheme": "http"}
            ],
        },
    }


def http_route(spec: RenderSpec) -> dict[str, Any]:
    assert spec.gateway is not None
    weights = (
        [(STABLE, 100)]
        if spec.canary is None
        else [(STABLE, 100 - spec.canary.weight), (CANARY, spec.canary.weight)]
    )
    route_spec: dict[str, Any] = {
        "parentRefs": [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": spec.gateway.name,
                "namespace": spec.gateway.namespace,
            }
        ],
    }
    if spec.gateway.hostname:
        route_spec["hostnames"] = [spec.gateway.hostname]
    route_spec["rules"] = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": f"/{spec.model}"}}],
            "backendRefs": [
                {
                    "group": "",
                    "kind": "Service",
                    "name": workload_name(spec, track),
                    "port": SERVICE_PORT,
                    "weight": weight,
                }
                for track, weight in weights
            ],
        }
    ]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": spec.model, "labels": lb.labels(spec, "all")},
        "spec": route_spec,
    }


def objects(spec: RenderSpec) -> list[tuple[str, dict[str, Any]]]:
    """(file name, object) for the base, in a fixed order."""
    result: list[tuple[str, dict[str, Any]]] = []
    for track, workload in tracks(spec):
        suffix = "" if track == STABLE else f"-{track}"
        result += [
            (f"deployment{suffix}.yaml", deployment(spec, track, workload)),
            (f"service{suffix}.yaml", service(spec, track)),
            (f"hpa{suffix}.yaml", autoscaler(spec, track)),
            (f"pdb{suffix}.yaml", disruption_budget(spec, track)),
        ]
    result += [
        ("networkpolicy.yaml", network_policy(spec)),
        ("servicemonitor.yaml", service_monitor(spec)),
    ]
    if spec.gateway is not None:
        result.append(("httproute.yaml", http_route(spec)))
    return result
