"""The rendered overlay builds with the real `kubectl kustomize` and the output validates."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlplane_deployer.domain.environments import ServingKind
from mlplane_deployer.render import render_validated
from mlplane_deployer.render.validate import validate_documents

from ..support import REPOSITORY, digest, spec

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"

pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl is not installed")


def _build(tmp_path: Path, kwargs: dict[str, Any]) -> tuple[str, str]:
    s = spec(**kwargs)
    tree = render_validated(s)
    for path, content in tree.files.items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    built = subprocess.run(
        [KUBECTL, "kustomize", str(tmp_path / tree.overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return built, s.target_namespace


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"canary_weight": 10}, {"serving": ServingKind.KSERVE, "canary_weight": 20}],
    ids=["rolling", "canary", "kserve"],
)
def test_overlay_builds_with_kubectl_and_validates(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    built, namespace = _build(tmp_path, kwargs)
    count = validate_documents(built, "kubectl kustomize")
    docs = list(yaml.safe_load_all(built))
    assert count == len(docs) > 0
    assert {d["metadata"]["namespace"] for d in docs} == {namespace}
    assert all(d["metadata"]["annotations"]["mlplane.io/image-digest"] == digest("a") for d in docs)


def test_built_workloads_run_images_by_digest_only(tmp_path: Path) -> None:
    built, _ = _build(tmp_path, {"canary_weight": 10})
    images = [
        c["image"]
        for d in yaml.safe_load_all(built)
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    assert sorted(images) == [f"{REPOSITORY}@{digest('a')}", f"{REPOSITORY}@{digest('b')}"]
