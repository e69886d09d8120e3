"""Rendered files for one model and environment: a Kustomize base and its overlay.

Layout under the GitOps repository (`spec.directory`):

    teams/<team>/<model>/<env>/base/kustomization.yaml, deployment.yaml, ...
    teams/<team>/<model>/<env>/overlay/kustomization.yaml   ← Argo CD syncs this

The base is per environment, not shared: a change committed for dev (a new
renderer, a new version) must never reach prod's objects without passing
prod's policy. Output is deterministic: the same spec gives the same bytes
(no timestamps, fixed key and file order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from mlplane_deployer.domain.environments import ServingKind
from mlplane_deployer.render import kserve, kustomize
from mlplane_deployer.render.spec import RenderSpec

KUSTOMIZATION = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML has no stubs here
    pass


def _no_aliases(dumper: yaml.SafeDumper, data: Any) -> bool:
    return True


_Dumper.ignore_aliases = _no_aliases  # type: ignore[method-assign]


def to_yaml(document: dict[str, Any]) -> bytes:
    """One YAML document, keys in the order built, never anchors, UTF-8."""
    text: str = yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=4096,
        allow_unicode=True,
    )
    return text.encode()


@dataclass(frozen=True, slots=True)
class RenderedTree:
    """Files by path relative to the repository root, and the objects they hold."""

    directory: str
    files: dict[str, bytes]
    objects: tuple[tuple[str, dict[str, Any]], ...]
    """(path, object) for each Kubernetes object in the base (kustomizations excluded)."""

    @property
    def overlay(self) -> str:
        return f"{self.directory}/overlay"


def render(spec: RenderSpec) -> RenderedTree:
    """Render `spec`'s base and overlay. Pure: raises nothing for a spec that was built."""
    base = f"{spec.directory}/base"
    if spec.serving is ServingKind.KSERVE:
        named = [("inferenceservice.yaml", kserve.inference_service(spec))]
    else:
        named = kustomize.objects(spec)
    files: dict[str, bytes] = {}
    objects: list[tuple[str, dict[str, Any]]] = []
    for name, obj in named:
        files[f"{base}/{name}"] = to_yaml(obj)
        objects.append((f"{base}/{name}", obj))
    files[f"{base}/kustomization.yaml"] = to_yaml(
        {**KUSTOMIZATION, "resources": [name for name, _ in named]}
    )
    files[f"{spec.directory}/overlay/kustomization.yaml"] = to_yaml(
        {
            **KUSTOMIZATION,
            "namespace": spec.target_namespace,
            "resources": ["../base"],
            "commonAnnotations": {
                "mlplane.io/model-version": str(spec.workload.version),
                "mlplane.io/image-digest": spec.workload.image.digest,
            },
        }
    )
    return RenderedTree(spec.directory, dict(sorted(files.items())), tuple(objects))
