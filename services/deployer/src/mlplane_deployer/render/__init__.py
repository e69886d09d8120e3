"""Rendering: a model and environment as Kustomize files or a KServe resource, validated.

`render_validated(spec)` is what the service calls: it renders and then checks
every object against Kubernetes 1.28+ schemas, raising `InvalidManifests` with
every error before anything reaches the GitOps repository.
"""

from __future__ import annotations

from mlplane_deployer.render.spec import RenderSpec
from mlplane_deployer.render.tree import RenderedTree, render
from mlplane_deployer.render.validate import DEFAULT_KUBERNETES_VERSION, validate_objects


def render_validated(
    spec: RenderSpec, kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
) -> RenderedTree:
    """Render `spec` and validate it; raises `InvalidManifests` listing every schema error."""
    tree = render(spec)
    validate_objects(tree.objects, kubernetes_version)
    return tree
