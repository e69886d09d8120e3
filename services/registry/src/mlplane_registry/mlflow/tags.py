"""Tags: which are the user's, which are mlplane's (hidden or read as input), and changes.

User tags follow mlplane's key grammar and MLflow's limits; keys starting with
`mlplane.` are mlplane's: `INPUT_TAGS` fill a new version's artifact and lineage,
`mlplane.mlflow.` ones keep what MLflow carries and mlplane has no field for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from mlplane_contracts.types import METRIC_KEY_PATTERN

from mlplane_registry.mlflow.errors import invalid
from mlplane_registry.schemas import MAX_TAG_VALUE, MAX_TAGS

RESERVED_PREFIX = "mlplane."
HIDDEN_PREFIX = "mlplane.mlflow."
DESCRIPTION_TAG = "mlplane.mlflow.description"
RUN_ID_TAG = "mlplane.mlflow.run_id"
MODEL_ID_TAG = "mlplane.mlflow.model_id"
"""The MLflow 3 logged model (`m-...`) the version was registered from."""
SOURCE_TAG = "mlplane.mlflow.source"
"""The `source` as the MLflow client gave it (the artifact's URI is where it resolved)."""

SHA256_TAG = "mlplane.sha256"
SIZE_TAG = "mlplane.size_bytes"
FRAMEWORK_TAG = "mlplane.framework"
MEDIA_TYPE_TAG = "mlplane.media_type"
GIT_REPOSITORY_TAG = "mlplane.git_repository"
COMMIT_TAG = "mlplane.commit_sha"
GIT_REF_TAG = "mlplane.git_ref"
CI_RUN_URL_TAG = "mlplane.ci_run_url"
INPUT_TAGS = frozenset(
    {
        SHA256_TAG,
        SIZE_TAG,
        FRAMEWORK_TAG,
        MEDIA_TYPE_TAG,
        GIT_REPOSITORY_TAG,
        COMMIT_TAG,
        GIT_REF_TAG,
        CI_RUN_URL_TAG,
    }
)
# MLflow marks prompts (kept in its model registry) with this tag; mlplane holds models only.
IS_PROMPT_TAG = "mlflow.prompt.is_prompt"
_TAG_KEY = re.compile(METRIC_KEY_PATTERN.strip("^$"))


def check_tag(key: str, value: str) -> tuple[str, str]:
    """A user tag mlplane can store (and announce in events); else INVALID_PARAMETER_VALUE."""
    if len(key) > 250 or _TAG_KEY.fullmatch(key) is None:
        raise invalid(
            f"Tag key '{key}' is not accepted by mlplane: keys are letters, digits and "
            "'_', '.', ':', '/', '-' (at most 250, not starting with a punctuation mark)."
        )
    if key.startswith(RESERVED_PREFIX):
        raise invalid(
            f"Tag key '{key}' is reserved: keys starting with '{RESERVED_PREFIX}' are mlplane's."
        )
    if key == IS_PROMPT_TAG:
        raise invalid("mlplane's registry holds models, not MLflow prompts.")
    if len(value) > MAX_TAG_VALUE:
        raise invalid(f"Tag '{key}' has a value longer than {MAX_TAG_VALUE} characters.")
    return key, value


def tags_json(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """The tags an MLflow client sees: all but mlplane's hidden ones, sorted by key."""
    return [
        {"key": key, "value": value}
        for key, value in sorted(tags.items())
        if not key.startswith(HIDDEN_PREFIX)
    ]


def with_tag(tags: Mapping[str, str], key: str, value: str) -> dict[str, str]:
    """`tags` with `key` set; INVALID_PARAMETER_VALUE when that makes more than `MAX_TAGS`
    user tags (mlplane's own `mlflow.`/`mlplane.` tags are not counted)."""
    result = {**tags, key: value}
    if key not in tags and sum(not k.startswith(RESERVED_PREFIX) for k in result) > MAX_TAGS:
        raise invalid(f"A model or version carries at most {MAX_TAGS} tags.")
    return result


def without_tag(tags: Mapping[str, str], key: str) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k != key}


def check_tag_key_deletable(key: str) -> str:
    """A tag key an MLflow client may delete: not one of mlplane's."""
    if key.startswith(RESERVED_PREFIX):
        raise invalid(
            f"Tag key '{key}' is reserved: keys starting with '{RESERVED_PREFIX}' are mlplane's."
        )
    return key


def with_description(tags: Mapping[str, str], description: str | None) -> dict[str, str]:
    """A version's tags with its MLflow description set (removed when empty)."""
    if description and len(description) > MAX_TAG_VALUE:
        raise invalid(f"description is longer than {MAX_TAG_VALUE} characters.")
    if not description:
        return without_tag(tags, DESCRIPTION_TAG)
    return with_tag(tags, DESCRIPTION_TAG, description)
