"""Subjects are a wire format: one spelling per entity, and every spelling parses back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlplane_contracts.subjects import (
    AliasSubject,
    CiRunsSubject,
    VersionSubject,
    alias_subject,
    ci_runs_subject,
    parse_alias_subject,
    parse_ci_runs_subject,
    parse_subject,
    parse_version_subject,
    version_subject,
)
from mlplane_contracts.testing import strategy_for
from mlplane_contracts.types import MAX_INT32, DnsLabel, VersionNumber

labels = strategy_for(DnsLabel)
versions = strategy_for(VersionNumber)
subjects = st.one_of(
    st.builds(VersionSubject, labels, labels, versions),
    st.builds(AliasSubject, labels, labels, labels),
    st.builds(CiRunsSubject, labels, labels),
)


class TestVersionSubject:
    def test_names_team_model_and_number(self) -> None:
        assert version_subject("risk", "fraud", 7) == "models/risk/fraud/versions/7"

    @pytest.mark.parametrize("version", [0, -1, MAX_INT32 + 1, True])
    def test_version_out_of_range_is_refused(self, version: int) -> None:
        with pytest.raises(ValueError, match="version"):
            version_subject("risk", "fraud", version)

    @pytest.mark.parametrize("team", ["", "Risk", "risk/ops", "-risk", "a" * 64, "risk\n"])
    def test_team_that_is_not_a_dns_label_is_refused(self, team: str) -> None:
        with pytest.raises(ValueError, match="team"):
            version_subject(team, "fraud", 7)

    def test_model_that_is_not_a_dns_label_is_refused(self) -> None:
        with pytest.raises(ValueError, match="model"):
            version_subject("risk", "fraud/7", 7)


class TestAliasSubject:
    def test_names_team_model_and_alias(self) -> None:
        assert alias_subject("risk", "fraud", "champion") == "models/risk/fraud/aliases/champion"

    def test_alias_with_a_slash_is_refused(self) -> None:
        with pytest.raises(ValueError, match="alias"):
            alias_subject("risk", "fraud", "champion/2")


class TestCiRunsSubject:
    def test_names_team_and_model(self) -> None:
        assert ci_runs_subject("risk", "fraud") == "models/risk/fraud/ci-runs"


class TestParseSubject:
    @given(subjects)
    def test_every_built_subject_parses_back_to_its_entity(
        self, entity: VersionSubject | AliasSubject | CiRunsSubject
    ) -> None:
        assert parse_subject(str(entity)) == entity

    @given(subjects)
    def test_a_subject_has_one_spelling(
        self, entity: VersionSubject | AliasSubject | CiRunsSubject
    ) -> None:
        subject = str(entity)
        assert str(parse_subject(subject)) == subject

    @pytest.mark.parametrize(
        "subject",
        [
            "",
            "models",
            "models/risk/fraud",
            "models/risk/fraud/",
            "model/risk/fraud/versions/7",
            "/models/risk/fraud/versions/7",
            "models/risk/fraud/versions/7/",
            "models/risk/fraud/versions/",
            "models/risk/fraud/versions/07",
            "models/risk/fraud/versions/+7",
            "models/risk/fraud/versions/0",
            "models/risk/fraud/versions/2147483648",
            "models/risk/fraud/versions/\u0667",  # ARABIC-INDIC DIGIT SEVEN: int() takes it
            "models/risk/fraud/versions/seven",
            "models/Risk/fraud/versions/7",
            "models/risk//versions/7",
            "models/risk/fraud/aliases/Champion",
            "models/risk/fraud/aliases",
            "models/risk/fraud/ci-runs/1",
            "models/risk/fraud/images/sha256:00",
        ],
    )
    def test_malformed_subject_is_refused(self, subject: str) -> None:
        with pytest.raises(ValueError, match="subject"):
            parse_subject(subject)

    @given(st.text(max_size=80))
    def test_any_text_either_parses_or_raises_value_error(self, text: str) -> None:
        try:
            entity = parse_subject(text)
        except ValueError:
            return
        assert str(entity) == text


class TestParseVersionSubject:
    def test_returns_team_model_and_number(self) -> None:
        assert parse_version_subject("models/risk/fraud/versions/7") == VersionSubject(
            "risk", "fraud", 7
        )

    def test_alias_subject_is_not_a_version_subject(self) -> None:
        with pytest.raises(ValueError, match="versions"):
            parse_version_subject("models/risk/fraud/aliases/champion")


class TestParseAliasSubject:
    def test_returns_team_model_and_alias(self) -> None:
        assert parse_alias_subject("models/risk/fraud/aliases/champion") == AliasSubject(
            "risk", "fraud", "champion"
        )

    def test_version_subject_is_not_an_alias_subject(self) -> None:
        with pytest.raises(ValueError, match="aliases"):
            parse_alias_subject("models/risk/fraud/versions/7")


class TestParseCiRunsSubject:
    def test_returns_team_and_model(self) -> None:
        assert parse_ci_runs_subject("models/risk/fraud/ci-runs") == CiRunsSubject("risk", "fraud")

    def test_version_subject_is_not_a_ci_runs_subject(self) -> None:
        with pytest.raises(ValueError, match="ci-runs"):
            parse_ci_runs_subject("models/risk/fraud/versions/7")
