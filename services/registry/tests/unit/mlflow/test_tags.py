"""mlplane_registry.mlflow.tags: as MLflow's registry maps onto mlplane's."""

from __future__ import annotations

import pytest
from mlplane_registry.mlflow import errors, tags


def test_tags_mlplane_cannot_store_or_announce_are_refused() -> None:
    assert tags.check_tag("team.owner", "risk") == ("team.owner", "risk")
    for key in ["has space", ".dot-first", "mlplane.mlflow.description", "mlplane.anything"]:
        with pytest.raises(errors.MlflowError):
            tags.check_tag(key, "v")
    with pytest.raises(errors.MlflowError, match="longer than"):
        tags.check_tag("k", "v" * 6001)
    with pytest.raises(errors.MlflowError, match="reserved"):
        tags.check_tag_key_deletable(tags.RUN_ID_TAG)


def test_a_description_lives_in_a_hidden_tag() -> None:
    described = tags.with_description({"k": "v"}, "new")
    assert described == {"k": "v", tags.DESCRIPTION_TAG: "new"}
    assert tags.with_description(described, "") == {"k": "v"}
    assert tags.tags_json(described) == [{"key": "k", "value": "v"}]
