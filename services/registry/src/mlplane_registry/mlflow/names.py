"""Model names, aliases and version numbers as MLflow sends them, checked for mlplane."""

from __future__ import annotations

import re

from mlplane_registry.domain import DNS_LABEL, MAX_DNS_LABEL
from mlplane_registry.mlflow.errors import invalid


def check_model_name(name: str) -> str:
    """`name` when mlplane accepts it as a model name; else INVALID_PARAMETER_VALUE."""
    if not name:
        raise invalid("Registered model name cannot be empty.")
    if len(name) > MAX_DNS_LABEL or DNS_LABEL.fullmatch(name) is None:
        suggestion = suggest_name(name)
        hint = f" (e.g. '{suggestion}')" if suggestion else ""
        raise invalid(
            f"Registered model name '{name}' is not accepted by mlplane: model names are "
            "DNS-1123 labels (lowercase letters, digits and '-', at most 63 characters, "
            f"starting and ending with a letter or digit){hint}."
        )
    return name


def check_alias(alias: str) -> str:
    if len(alias) > MAX_DNS_LABEL or DNS_LABEL.fullmatch(alias) is None:
        raise invalid(
            f"Alias '{alias}' is not accepted by mlplane: aliases are DNS-1123 labels "
            "(lowercase letters, digits and '-', at most 63 characters)."
        )
    return alias


def suggest_name(name: str) -> str:
    """A DNS-1123 label close to `name` ('' when none is): lowercased, runs of others → '-'."""
    label = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return label[:MAX_DNS_LABEL].rstrip("-")


def parse_version(version: str) -> int:
    """MLflow's version string as a number; INVALID_PARAMETER_VALUE when it is none."""
    text = version.strip()
    if not text.isascii() or not text.isdigit() or int(text) < 1 or int(text) > 2**31 - 1:
        raise invalid(f"Model version must be a positive integer, got '{version}'.")
    return int(text)
