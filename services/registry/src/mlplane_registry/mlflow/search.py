"""MLflow's search: the filter grammar mlplane can answer, and orderings (none)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from mlplane_registry.mlflow.errors import MlflowError, invalid
from mlplane_registry.mlflow.tags import IS_PROMPT_TAG, RUN_ID_TAG


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """An MLflow filter string, as far as mlplane can search by it."""

    name: str | None = None
    name_prefix: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    prompts_only: bool = False
    """Asks for MLflow prompts only: there are none (mlplane does not store prompts)."""

    SUPPORTED: ClassVar[str] = (
        "name = '<name>', name LIKE '<prefix>%', run_id = '<id>' (versions only) and "
        "tags.<key> = '<value>' (versions only), joined by AND"
    )


_CLAUSE = re.compile(
    r"""\s*(?P<field>name|run_id|tags?\.(?:`[^`]+`|"[^"]+"|[A-Za-z0-9_.:/-]+))"""
    r"""\s*(?P<op>=|==|!=|LIKE|ILIKE)\s*(?P<value>'[^']*'|"[^"]*")\s*""",
    re.IGNORECASE,
)
_AND = re.compile(r"AND\b", re.IGNORECASE)


def parse_filter(text: str | None, *, versions: bool) -> SearchFilter:
    """The filter of a `search` request; INVALID_PARAMETER_VALUE for what mlplane cannot do."""
    if text is None or not text.strip():
        return SearchFilter()
    name: str | None = None
    prefix: str | None = None
    tags: list[tuple[str, str]] = []
    prompts_only = False
    position = 0
    while True:
        match = _CLAUSE.match(text, position)
        if match is None:
            raise _unsupported(text)
        field = match["field"]
        op = match["op"].upper()
        value = match["value"][1:-1]
        lowered = field.lower()
        if lowered == "name" and op in ("=", "=="):
            name = value
        elif lowered == "name" and op in ("LIKE", "ILIKE"):
            if not value.endswith("%") or any(c in value[:-1] for c in "%_"):
                raise _unsupported(text)
            prefix = value[:-1].lower() if op == "ILIKE" else value[:-1]
        elif versions and lowered == "run_id" and op in ("=", "=="):
            tags.append((RUN_ID_TAG, value))
        elif lowered.startswith("tag"):
            key = field.partition(".")[2].strip('`"')
            if key == IS_PROMPT_TAG and value == "true" and op == "!=":
                pass  # the MLflow client excludes prompts: mlplane holds none
            elif key == IS_PROMPT_TAG and value == "true" and op in ("=", "=="):
                prompts_only = True
            elif versions and op in ("=", "=="):
                tags.append((key, value))
            else:
                raise _unsupported(text)
        else:
            raise _unsupported(text)
        position = match.end()
        if position == len(text):
            break
        conjunction = _AND.match(text, position)
        if conjunction is None:
            raise _unsupported(text)
        position = conjunction.end()
    return SearchFilter(name=name, name_prefix=prefix, tags=tuple(tags), prompts_only=prompts_only)


def _unsupported(text: str) -> MlflowError:
    return invalid(f"Unsupported filter '{text}': mlplane supports {SearchFilter.SUPPORTED}.")


def check_order_by(order_by: Iterable[str]) -> None:
    """mlplane returns search results in its own stable order and sorts by nothing else."""
    given = [o for o in order_by if o.strip()]
    if given:
        raise invalid(
            f"Unsupported order_by {given}: mlplane returns models by name and versions "
            "in registration order."
        )
