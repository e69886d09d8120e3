"""The Argo CD `Application` (argoproj.io/v1alpha1) that syncs one model and environment.

Auto-sync with prune and self-heal: the GitOps repository is the truth, and a
rollback is a revert commit there (Argo CD's own rollback refuses auto-sync).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlplane_deployer.render import labels as lb
from mlplane_deployer.render.spec import RenderSpec


@dataclass(frozen=True, slots=True)
class ArgoTarget:
    repo_url: str
    revision: str = "main"
    argocd_namespace: str = "argocd"
    project: str = "default"
    cluster: str = "https://kubernetes.default.svc"


def application_name(spec: RenderSpec) -> str:
    return application_name_of(spec.team, spec.model, spec.environment)


def application_name_of(team: str, model: str, environment: str) -> str:
    """The Application of one model and environment (one per pair, replaced by each commit)."""
    return f"{team}-{model}-{environment}"


def application(spec: RenderSpec, target: ArgoTarget, overlay_path: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": application_name(spec),
            "namespace": target.argocd_namespace,
            "labels": lb.labels(spec, "all"),
            # Deleting the Application deletes what it deployed.
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        },
        "spec": {
            "project": target.project,
            "source": {
                "repoURL": target.repo_url,
                "targetRevision": target.revision,
                "path": overlay_path,
            },
            "destination": {"server": target.cluster, "namespace": spec.target_namespace},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=true", "ServerSideApply=true"],
                "retry": {
                    "limit": 5,
                    "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"},
                },
            },
            "revisionHistoryLimit": 10,
        },
    }
