"""mlplane_registry.mlflow.search: MLflow's filter grammar and order_by, in the store's terms."""

from __future__ import annotations

import pytest
from mlplane_registry.mlflow import errors, tags
from mlplane_registry.mlflow.search import SearchQuery, parse_filter, parse_order_by
from mlplane_registry.store import Comparison, Ordering


def test_empty_filters_select_everything() -> None:
    assert parse_filter(None, versions=True) == SearchQuery()
    assert parse_filter("  ", versions=False) == SearchQuery()


def test_every_comparator_mlflow_sends_is_parsed() -> None:
    query = parse_filter(
        "name = 'fraud' and run_id != \"r1\" AND tags.`my key` LIKE 'x%' AND tag.k ILIKE '%Y' "
        "AND source_path = 's3://b/k' AND version_number >= 2 AND name IN ('a', 'b') "
        "AND run_id NOT IN ('r2') AND creation_timestamp < 1700000000000",
        versions=True,
    )
    assert query.comparisons == (
        Comparison("name", "=", ("fraud",)),
        Comparison("run_id", "!=", ("r1",)),
        Comparison("tag", "LIKE", ("x%",), "my key"),
        Comparison("tag", "ILIKE", ("%Y",), "k"),
        Comparison("source", "=", ("s3://b/k",)),
        Comparison("version", ">=", ("2",)),
        Comparison("name", "IN", ("a", "b")),
        Comparison("run_id", "NOT IN", ("r2",)),
        Comparison("created", "<", ("1700000000000",)),
    )


def test_models_search_by_name_tags_and_timestamps() -> None:
    query = parse_filter("name LIKE 'fr%' AND tags.team = 'risk'", versions=False)
    assert query.comparisons == (
        Comparison("name", "LIKE", ("fr%",)),
        Comparison("tag", "=", ("risk",), "team"),
    )


@pytest.mark.parametrize(
    ("text", "versions"),
    [
        ("run_id = 'r'", False),  # models have no run
        ("source_path = 'x'", False),
        ("name = 'x' OR name = 'y'", True),
        ("name = 'x' AND", True),
        ("name = 'x' garbage", True),
        ("name > 'x'", True),
        ("version_number LIKE '1%'", True),
        ("version_number = 'one'", True),
        ("tags.k IN ('a')", True),
        ("tags.`mlplane.sha256` = 'x'", True),
        ("name IN 'a'", True),
        ("name IN ('a'", True),
        ("nonsense = 'x'", True),
    ],
)
def test_other_filters_are_refused_as_invalid_parameters(text: str, versions: bool) -> None:
    with pytest.raises(errors.MlflowError, match="Invalid filter") as refused:
        parse_filter(text, versions=versions)
    assert refused.value.error_code == errors.INVALID_PARAMETER_VALUE


def test_order_by_keys_directions_and_natural_tie_breakers() -> None:
    assert parse_order_by([], versions=False) == (Ordering("name"),)
    assert parse_order_by([""], versions=True) == (
        Ordering("updated", descending=True),
        Ordering("name"),
        Ordering("version", descending=True),
    )
    assert parse_order_by(["version_number ASC", "`name` DESC"], versions=True) == (
        Ordering("version"),
        Ordering("name", descending=True),
    )
    assert parse_order_by(["creation_timestamp desc"], versions=False) == (
        Ordering("created", descending=True),
        Ordering("name"),
    )


@pytest.mark.parametrize(
    ("items", "versions"),
    [
        (["version_number"], False),
        (["name SIDEWAYS"], False),
        (["name", "name DESC"], True),
        (["tags.k"], True),
        (["name ASC extra"], True),
    ],
)
def test_bad_order_by_is_refused(items: list[str], versions: bool) -> None:
    with pytest.raises(errors.MlflowError) as refused:
        parse_order_by(items, versions=versions)
    assert refused.value.error_code == errors.INVALID_PARAMETER_VALUE


def test_the_clients_prompt_filters_are_understood_as_mlplane_holds_no_prompts() -> None:
    # MlflowClient.search_registered_models appends this to every filter.
    excluded = parse_filter(
        "name LIKE 'fr%' AND tag.`mlflow.prompt.is_prompt` != 'true'", versions=False
    )
    assert excluded == SearchQuery((Comparison("name", "LIKE", ("fr%",)),))
    assert parse_filter("tags.`mlflow.prompt.is_prompt` = 'true'", versions=True).prompts_only
    with pytest.raises(errors.MlflowError, match="not MLflow prompts"):
        tags.check_tag(tags.IS_PROMPT_TAG, "true")
