"""MLflow's registry JSON ↔ the domain: names, errors, tags, new versions, filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mlplane_registry import mlflow_mapping as m
from mlplane_registry.domain import (
    Artifact,
    InvalidName,
    InvalidTransition,
    Lifecycle,
    Lineage,
    Model,
    ModelAlreadyExists,
    ModelNotFound,
    ModelVersion,
    StaleETag,
)
from mlplane_runtime.errors import InvalidInput, MlplaneError, Unavailable

T0 = datetime(2026, 11, 1, 12, 0, 0, 123000, tzinfo=UTC)
SHA = "a" * 64
COMMIT = "b" * 40
INPUTS = [
    ("mlplane.sha256", SHA),
    ("mlplane.size_bytes", "1234"),
    ("mlplane.git_repository", "https://git.example.com/ml/fraud"),
    ("mlplane.commit_sha", COMMIT),
]


def version(number: int = 1, **tags: str) -> ModelVersion:
    return ModelVersion(
        id=number,
        model_id=1,
        team="risk",
        model="fraud",
        version=number,
        framework="sklearn",
        artifact=Artifact("s3://models/fraud/1/model.pkl", 10, SHA),
        lineage=Lineage("https://git.example.com/ml/fraud", COMMIT, "https://ci.example.com/1"),
        signature=None,
        tags=dict(tags),
        status_message=None,
        lifecycle=Lifecycle(),
        aliases=("champion", "b-side"),
        registered_by="user:ana",
        created_at=T0,
        updated_at=T0,
        etag="e",
    )


def model() -> Model:
    return Model(1, "risk", "fraud", "detects fraud", {"owner": "risk"}, T0, T0, "e")


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (ModelNotFound("no model"), "RESOURCE_DOES_NOT_EXIST", 404),
        (ModelAlreadyExists("exists"), "RESOURCE_ALREADY_EXISTS", 400),
        (InvalidName("bad name"), "INVALID_PARAMETER_VALUE", 400),
        (InvalidInput("bad cursor"), "INVALID_PARAMETER_VALUE", 400),
        (InvalidTransition("no"), "INVALID_STATE", 500),
        (StaleETag("changed"), "RESOURCE_CONFLICT", 409),
        (Unavailable("db down"), "TEMPORARILY_UNAVAILABLE", 503),
        (MlplaneError("boom"), "INTERNAL_ERROR", 500),
    ],
)
def test_domain_errors_become_mlflow_errors_with_mlflows_status(
    error: MlplaneError, code: str, status: int
) -> None:
    mapped = m.error_of(error)
    assert mapped.body() == {"error_code": code, "message": error.detail}
    assert mapped.status == status


def test_validation_errors_name_the_parameter_as_mlflow_does() -> None:
    message = m.validation_message(
        [
            {"loc": ("name",), "type": "missing", "msg": "Field required"},
            {"loc": ("body", "max_results"), "type": "int_parsing", "msg": "not an int"},
        ]
    )
    assert "Missing value for required parameter 'name'." in message
    assert "parameter 'max_results': not an int" in message


# -- names --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fraud", "fraud-v2", "a", "x" * 63])
def test_dns_label_model_names_are_accepted(name: str) -> None:
    assert m.check_model_name(name) == name


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("Fraud Model", "fraud-model"), ("fraud_v2", "fraud-v2"), ("-x-", "x"), ("x" * 64, "x" * 63)],
)
def test_other_model_names_are_refused_with_a_suggestion(name: str, suggestion: str) -> None:
    with pytest.raises(m.MlflowError) as refused:
        m.check_model_name(name)
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    assert f"'{name}'" in refused.value.message
    assert "DNS-1123" in refused.value.message
    assert f"'{suggestion}'" in refused.value.message


def test_aliases_must_be_dns_labels() -> None:
    assert m.check_alias("champion") == "champion"
    with pytest.raises(m.MlflowError, match="DNS-1123"):
        m.check_alias("Champion")


@pytest.mark.parametrize("text", ["0", "-1", "x", "1.5", "", "²", str(2**31)])
def test_versions_are_positive_integers(text: str) -> None:
    with pytest.raises(m.MlflowError, match="positive integer"):
        m.parse_version(text)
    assert m.parse_version(" 7 ") == 7


# -- entities -----------------------------------------------------------------------------


def test_a_version_as_mlflow_sees_it() -> None:
    found = m.model_version_json(
        version(3, team="a", **{m.DESCRIPTION_TAG: "better recall", m.RUN_ID_TAG: "run-1"})
    )
    assert found == {
        "name": "fraud",
        "version": "3",
        "creation_timestamp": 1_793_534_400_123,
        "last_updated_timestamp": 1_793_534_400_123,
        "user_id": "user:ana",
        "current_stage": "None",
        "description": "better recall",
        "source": "s3://models/fraud/1/model.pkl",
        "run_id": "run-1",
        "run_link": "https://ci.example.com/1",
        "status": "READY",
        "status_message": "",
        "tags": [{"key": "team", "value": "a"}],  # mlplane's hidden tags are not shown
        "aliases": ["b-side", "champion"],
    }


def test_a_registered_model_carries_aliases_and_latest_version_when_given_its_versions() -> None:
    bare = m.registered_model_json(model())
    assert bare["tags"] == [{"key": "owner", "value": "risk"}]
    assert "aliases" not in bare
    assert "latest_versions" not in bare
    full = m.registered_model_json(model(), [version(1), version(2)])
    assert {"alias": "champion", "version": "2"} in full["aliases"]
    assert [v["version"] for v in full["latest_versions"]] == ["2"]
    assert m.registered_model_json(model(), [])["latest_versions"] == []


def test_latest_versions_are_all_in_stage_none() -> None:
    latest = version(4)
    assert m.latest_for_stages([], latest) == [latest]
    assert m.latest_for_stages(["None", "Production"], latest) == [latest]
    assert m.latest_for_stages(["Production"], latest) == []
    assert m.latest_for_stages([], None) == []
    with pytest.raises(m.MlflowError, match="Invalid Model Version stage: gold"):
        m.latest_for_stages(["gold"], latest)


# -- tags ---------------------------------------------------------------------------------


def test_tags_mlplane_cannot_store_or_announce_are_refused() -> None:
    assert m.check_tag("team.owner", "risk") == ("team.owner", "risk")
    for key in ["has space", ".dot-first", "mlplane.mlflow.description", "mlplane.anything"]:
        with pytest.raises(m.MlflowError):
            m.check_tag(key, "v")
    with pytest.raises(m.MlflowError, match="longer than"):
        m.check_tag("k", "v" * 6001)
    with pytest.raises(m.MlflowError, match="reserved"):
        m.check_tag_key_deletable(m.RUN_ID_TAG)


def test_a_description_lives_in_a_hidden_tag() -> None:
    tags = m.with_description({"k": "v"}, "new")
    assert tags == {"k": "v", m.DESCRIPTION_TAG: "new"}
    assert m.with_description(tags, "") == {"k": "v"}
    assert m.tags_json(tags) == [{"key": "k", "value": "v"}]


# -- new versions -------------------------------------------------------------------------


def test_a_new_version_takes_artifact_and_lineage_from_mlplane_tags() -> None:
    new = m.new_version(
        source="s3://models/fraud/7/model.onnx",
        run_id="abc123",
        run_link="https://ci.example.com/runs/7",
        description="first",
        tags=[*INPUTS, ("mlplane.framework", "onnx"), ("mlplane.git_ref", "main"), ("k", "v")],
    )
    assert new.framework == "onnx"
    assert new.artifact == Artifact("s3://models/fraud/7/model.onnx", 1234, SHA, None)
    assert new.lineage == Lineage(
        "https://git.example.com/ml/fraud", COMMIT, "https://ci.example.com/runs/7", "main"
    )
    assert new.tags == {"k": "v", m.DESCRIPTION_TAG: "first", m.RUN_ID_TAG: "abc123"}


def test_the_ci_run_url_tag_stands_in_for_run_link_and_framework_defaults_to_custom() -> None:
    new = m.new_version(
        source="file:///srv/models/fraud",
        run_id=None,
        run_link=None,
        description=None,
        tags=[*INPUTS, ("mlplane.ci_run_url", "https://ci.example.com/9")],
    )
    assert new.lineage.ci_run_url == "https://ci.example.com/9"
    assert new.framework == "custom"
    assert new.tags == {}


def test_a_new_version_without_what_mlplane_needs_is_refused_naming_all_of_it() -> None:
    with pytest.raises(m.MlflowError) as refused:
        m.new_version(
            source="runs:/abc/model",
            run_id="abc",
            run_link=None,
            description=None,
            tags=[("mlplane.sha256", "XYZ"), ("mlplane.framework", "caffe"), ("bad key", "v")],
        )
    message = refused.value.message
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    for expected in [
        "source 'runs:/abc/model' is not an absolute URI",
        "Tag 'mlplane.sha256' = 'XYZ' is not",
        "Missing tag 'mlplane.size_bytes'",
        "Missing tag 'mlplane.git_repository'",
        "Missing tag 'mlplane.commit_sha'",
        "Missing tag 'mlplane.ci_run_url'",
        "'mlplane.framework' = 'caffe' is not one of",
        "Tag key 'bad key'",
    ]:
        assert expected in message


# -- search -------------------------------------------------------------------------------


def test_filters_mlplane_can_search_by() -> None:
    assert m.parse_filter(None, versions=True) == m.SearchFilter()
    assert m.parse_filter("  ", versions=False) == m.SearchFilter()
    assert m.parse_filter("name='fraud'", versions=False) == m.SearchFilter(name="fraud")
    assert m.parse_filter('name LIKE "fr%"', versions=False) == m.SearchFilter(name_prefix="fr")
    assert m.parse_filter("name ILIKE 'FR%'", versions=False) == m.SearchFilter(name_prefix="fr")
    assert m.parse_filter(
        "name = 'fraud' and run_id='r1' AND tags.`my key` = 'x' AND tags.k='y'", versions=True
    ) == m.SearchFilter(name="fraud", tags=((m.RUN_ID_TAG, "r1"), ("my key", "x"), ("k", "y")))


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
    with pytest.raises(m.MlflowError, match="mlplane supports name = "):
        m.parse_filter(text, versions=versions)


def test_order_by_is_refused_unless_empty() -> None:
    m.check_order_by([])
    m.check_order_by([""])
    with pytest.raises(m.MlflowError, match="order_by"):
        m.check_order_by(["name DESC"])


def test_page_tokens_of_model_search_round_trip_and_bad_ones_are_refused() -> None:
    assert m.decode_offset(None) == 0
    assert m.decode_offset(m.encode_offset(200)) == 200
    for token in ["nope", m.encode_offset(-1), "e30="]:
        with pytest.raises(m.MlflowError, match="page_token"):
            m.decode_offset(token)


def test_the_clients_prompt_filters_are_understood_as_mlplane_holds_no_prompts() -> None:
    # MlflowClient.search_registered_models appends this to every filter.
    excluded = m.parse_filter(
        "name LIKE 'fr%' AND tag.`mlflow.prompt.is_prompt` != 'true'", versions=False
    )
    assert excluded == m.SearchFilter(name_prefix="fr")
    only = m.parse_filter("tags.`mlflow.prompt.is_prompt` = 'true'", versions=True)
    assert only.prompts_only
    with pytest.raises(m.MlflowError, match="not MLflow prompts"):
        m.check_tag(m.IS_PROMPT_TAG, "true")
