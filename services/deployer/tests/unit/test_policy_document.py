"""A policy as JSON and back: the same rules, and names the events cannot carry refused."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from mlplane_deployer.domain.environments import (
    EnvironmentRules,
    EnvironmentSpec,
    FreezeWindow,
    ServingKind,
    TeamEnvironments,
    WeeklyFreeze,
    default_environments,
)
from mlplane_deployer.domain.errors import InvalidEnvironments
from mlplane_deployer.domain.policy_document import environments_from_json, environments_to_json


def test_a_policy_survives_json() -> None:
    rules = EnvironmentRules(
        approvals_required=2,
        require_lineage=True,
        serving=ServingKind.KSERVE,
        follows_alias="champion",
        freeze_windows=(
            FreezeWindow(datetime(2026, 12, 24, tzinfo=UTC), datetime(2026, 12, 27, tzinfo=UTC)),
        ),
        weekly_freezes=(WeeklyFreeze("Europe/Berlin", 5, time(16), 1, time(8)),),
    )
    environments = TeamEnvironments(
        "acme", (EnvironmentSpec("dev"), EnvironmentSpec("prod", rules))
    )
    assert environments_from_json("acme", environments_to_json(environments)) == environments
    defaults = default_environments("acme")
    assert environments_from_json("acme", environments_to_json(defaults)) == defaults


def test_an_environment_the_events_cannot_name_is_refused() -> None:
    with pytest.raises(InvalidEnvironments, match="qa"):
        environments_from_json("acme", {"environments": [{"name": "qa"}]})
