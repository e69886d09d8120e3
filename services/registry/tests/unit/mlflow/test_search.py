"""mlplane_registry.mlflow.search: as MLflow's registry maps onto mlplane's."""

from __future__ import annotations

import pytest
from mlplane_registry.mlflow import errors, search, tags
from mlplane_registry.mlflow.search import SearchFilter, parse_filter


def test_filters_mlplane_can_search_by() -> None:
    assert parse_filter(None, versions=True) == SearchFilter()
    assert parse_filter("  ", versions=False) == SearchFilter()
    assert parse_filter("name='fraud'", versions=False) == SearchFilter(name="fraud")
    assert parse_filter('name LIKE "fr%"', versions=False) == SearchFilter(name_prefix="fr")
    assert parse_filter("name ILIKE 'FR%'", versions=False) == SearchFilter(name_prefix="fr")
    assert parse_filter(
        "name = 'fraud' and run_id='r1' AND tags.`my key` = 'x' AND tags.k='y'", versions=True
    ) == SearchFilter(name="fraud", tags=((tags.RUN_ID_TAG, "r1"), ("my key", "x"), ("k", "y")))


@pytest.mark.parametrize(
    ("text", "versions"),
    [
        ("name != 'x'", True),
        ("name LIKE '%x'", True),
        ("name LIKE 'a_b%'", True),
        ("tags.k = 'v'", False),
        ("run_id = 'r'", False),
        ("name = 'x' OR name = 'y'", True),
        ("name = 'x' AND", True),
        ("source_path = 'x'", True),
        ("name = 'x' garbage", True),
    ],
)
def test_other_filters_are_refused_saying_what_is_supported(text: str, versions: bool) -> None:
    with pytest.raises(errors.MlflowError, match="mlplane supports name = "):
        parse_filter(text, versions=versions)


def test_order_by_is_refused_unless_empty() -> None:
    search.check_order_by([])
    search.check_order_by([""])
    with pytest.raises(errors.MlflowError, match="order_by"):
        search.check_order_by(["name DESC"])


def test_the_clients_prompt_filters_are_understood_as_mlplane_holds_no_prompts() -> None:
    # MlflowClient.search_registered_models appends this to every filter.
    excluded = parse_filter(
        "name LIKE 'fr%' AND tag.`mlflow.prompt.is_prompt` != 'true'", versions=False
    )
    assert excluded == SearchFilter(name_prefix="fr")
    only = parse_filter("tags.`mlflow.prompt.is_prompt` = 'true'", versions=True)
    assert only.prompts_only
    with pytest.raises(errors.MlflowError, match="not MLflow prompts"):
        tags.check_tag(tags.IS_PROMPT_TAG, "true")
