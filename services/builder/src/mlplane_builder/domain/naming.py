"""Where a model version's image goes: its repository (from a template) and its tag."""

from __future__ import annotations

import re

from mlplane_runtime.errors import InvalidInput

_PLACEHOLDERS = re.compile(r"\{([^{}]*)\}")
_ALLOWED = frozenset({"team", "model"})
# One path component of an OCI repository name (distribution spec).
_COMPONENT = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*")


def check_repository_template(template: str) -> str:
    """`template` when it only uses `{team}` and `{model}` and yields valid names.

    Raises ValueError naming what is wrong (settings turn it into a start-up error).
    """
    unknown = sorted(set(_PLACEHOLDERS.findall(template)) - _ALLOWED)
    if unknown:
        raise ValueError(
            f"repository template {template!r} uses {', '.join(unknown)}; "
            "only {team} and {model} are known"
        )
    if "{model}" not in template:
        raise ValueError(f"repository template {template!r} must contain {{model}}")
    sample = template.format(team="team", model="model")
    if not all(_COMPONENT.fullmatch(part) for part in sample.split("/")):
        raise ValueError(
            f"repository template {template!r} does not give an OCI repository name "
            "(lowercase path components separated by '/')"
        )
    return template


def image_repository(template: str, team: str, model: str) -> str:
    """The repository (inside the target registry) of `team`'s `model`.

    Team and model are DNS labels, so the result is a valid repository name when the
    template is. Raises InvalidInput otherwise.
    """
    repository = template.format(team=team, model=model)
    if not all(_COMPONENT.fullmatch(part) for part in repository.split("/")):
        raise InvalidInput(f"{repository!r} is not an OCI repository name")
    return repository


def version_tag(version: int) -> str:
    """The tag a version's image is pushed under, beside its digest: `v<version>`."""
    return f"v{version}"
