"""What goes into a version's image besides the base: the model file's place, env, labels.

All of it is derived from the build request alone (no clock, no randomness), so the
same version gives the same config bytes and therefore the same image digest.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass
from datetime import UTC
from urllib.parse import unquote, urlsplit

from mlplane_builder.domain.builds import BuildRequest

MODELS_ROOT = "/models"
MODEL_FILE_MODE = 0o644
FORMAT_VERSION = "1"
"""Bumped when the builder lays images out differently: part of the build key."""
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
DEFAULT_FILE_NAME = "model"

LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_CREATED = "org.opencontainers.image.created"
LABEL_TITLE = "org.opencontainers.image.title"
LABEL_VERSION = "org.opencontainers.image.version"
LABEL_BASE_NAME = "org.opencontainers.image.base.name"
LABEL_BASE_DIGEST = "org.opencontainers.image.base.digest"
LABEL_CI_RUN = "io.mlplane.ci-run"
LABEL_ARTIFACT_SHA256 = "io.mlplane.artifact-sha256"
LABEL_TEAM = "io.mlplane.team"
LABEL_MODEL = "io.mlplane.model"
LABEL_MODEL_VERSION = "io.mlplane.model-version"
LABEL_FRAMEWORK = "io.mlplane.framework"
LABEL_BUILD_KEY = "io.mlplane.build-key"
"""A digest of every input of the build: an image in the target carrying the same key
is this build's result, so a rebuild can reuse it without uploading anything."""


def artifact_file_name(uri: str) -> str:
    """The artifact's file name from its URI, reduced to characters safe in a path."""
    name = posixpath.basename(unquote(urlsplit(uri).path).rstrip("/"))
    name = _SAFE_NAME.sub("_", name).lstrip(".")
    return name or DEFAULT_FILE_NAME


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """The model layer's file and the config's env and labels of one build."""

    model_path: str
    """Absolute path of the model file inside the image, or of the model directory
    (an MLflow model) whose files the layer holds."""
    env: dict[str, str]
    labels: dict[str, str]
    history_comment: str
    created: str
    """The image's creation time: the version's registration time, never the clock's."""

    @property
    def layer_path(self) -> str:
        """`model_path` as a tar member name (relative)."""
        return self.model_path.lstrip("/")


def image_spec(
    request: BuildRequest, *, base_image: str | None, compression_level: int
) -> ImageSpec:
    """The spec of `request`'s image on `base_image` (`repo@digest`, None: scratch)."""
    model_dir = f"{MODELS_ROOT}/{request.model}/{request.version}"
    # A model directory (an MLflow model) is the version's directory itself, so
    # MODEL_PATH is what `mlflow models serve -m` takes; a file goes in it, by its name.
    model_path = (
        model_dir
        if request.artifact_is_directory
        else f"{model_dir}/{artifact_file_name(request.artifact_uri)}"
    )
    created = request.registered_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    env = {
        "MODEL_NAME": request.model,
        "MODEL_VERSION": str(request.version),
        "MODEL_PATH": model_path,
    }
    labels = {
        LABEL_SOURCE: request.git_repository,
        LABEL_REVISION: request.commit_sha,
        LABEL_CREATED: created,
        LABEL_TITLE: f"{request.team}/{request.model}",
        LABEL_VERSION: str(request.version),
        LABEL_CI_RUN: request.ci_run_url,
        LABEL_ARTIFACT_SHA256: request.artifact_sha256,
        LABEL_TEAM: request.team,
        LABEL_MODEL: request.model,
        LABEL_MODEL_VERSION: str(request.version),
        LABEL_FRAMEWORK: request.framework,
    }
    if base_image is not None:
        name, _, digest = base_image.partition("@")
        labels[LABEL_BASE_NAME] = name
        labels[LABEL_BASE_DIGEST] = digest
    labels[LABEL_BUILD_KEY] = build_key(
        env, labels, model_path=model_path, compression_level=compression_level
    )
    return ImageSpec(
        model_path=model_path,
        env=env,
        labels=labels,
        history_comment=(
            f"mlplane builder: {request.team}/{request.model} version {request.version} "
            f"({request.framework}) at {model_path}"
        ),
        created=created,
    )


def build_key(
    env: dict[str, str], labels: dict[str, str], *, model_path: str, compression_level: int
) -> str:
    """sha256 of the canonical JSON of every input that shapes the image."""
    inputs = {
        "format": FORMAT_VERSION,
        "env": env,
        "labels": labels,
        "model_path": model_path,
        "compression_level": compression_level,
    }
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()
