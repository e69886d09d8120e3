"""mlplane_registry.mlflow.paging: as MLflow's registry maps onto mlplane's."""

from __future__ import annotations

import pytest
from mlplane_registry.mlflow import errors, paging


def test_page_tokens_of_model_search_round_trip_and_bad_ones_are_refused() -> None:
    assert paging.decode_offset(None) == 0
    assert paging.decode_offset(paging.encode_offset(200)) == 200
    for token in ["nope", paging.encode_offset(-1), "e30="]:
        with pytest.raises(errors.MlflowError, match="page_token"):
            paging.decode_offset(token)
