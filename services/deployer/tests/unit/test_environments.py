from __future__ import annotations

import uuid

import pytest
from mlplane_deployer.domain.environments import (
    EnvironmentRules,
    EnvironmentSpec,
    ServingKind,
    TeamEnvironments,
    default_environments,
)
from mlplane_deployer.domain.errors import InvalidEnvironments, UnknownEnvironment


def _team() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


class TestDefaultEnvironments:
    def test_default_order_is_dev_staging_prod(self) -> None:
        envs = default_environments(_team())
        assert envs.names == ("dev", "staging", "prod")

    def test_prod_needs_an_approval_and_lineage_by_default(self) -> None:
        prod = default_environments(_team()).get("prod").rules
        assert prod.approvals_required == 1
        assert prod.require_lineage
        assert prod.require_passed_scan

    def test_dev_needs_no_previous_environment(self) -> None:
        assert not default_environments(_team()).get("dev").rules.require_healthy_in_previous


class TestPromotionOrder:
    def test_previous_and_next_follow_the_order(self) -> None:
        envs = default_environments(_team())
        assert envs.previous("dev") is None
        assert envs.next("dev") == envs.get("staging")
        assert envs.previous("prod") == envs.get("staging")
        assert envs.next("prod") is None

    def test_a_team_may_order_its_own_environments(self) -> None:
        envs = TeamEnvironments(
            _team(),
            (
                EnvironmentSpec("qa", EnvironmentRules(require_healthy_in_previous=False)),
                EnvironmentSpec("live", EnvironmentRules(serving=ServingKind.KSERVE)),
            ),
        )
        assert envs.next("qa") == envs.get("live")

    def test_unknown_environment_is_not_found(self) -> None:
        with pytest.raises(UnknownEnvironment):
            default_environments(_team()).next("qa")

    def test_an_alias_names_the_environment_following_it(self) -> None:
        team = _team()
        envs = default_environments(team).with_rules(
            "prod", EnvironmentRules(follows_alias="champion")
        )
        assert envs.following("champion") == envs.get("prod")
        assert envs.following("challenger") is None


class TestValidation:
    def test_a_name_twice_is_refused(self) -> None:
        with pytest.raises(InvalidEnvironments):
            TeamEnvironments(_team(), (EnvironmentSpec("dev"), EnvironmentSpec("dev")))

    def test_no_environment_is_refused(self) -> None:
        with pytest.raises(InvalidEnvironments):
            TeamEnvironments(_team(), ())

    def test_a_name_that_is_not_a_dns_label_is_refused(self) -> None:
        with pytest.raises(InvalidEnvironments):
            EnvironmentSpec("Prod_EU")

    def test_an_alias_followed_twice_is_refused(self) -> None:
        rules = EnvironmentRules(follows_alias="champion")
        with pytest.raises(InvalidEnvironments):
            TeamEnvironments(_team(), (EnvironmentSpec("a", rules), EnvironmentSpec("b", rules)))

    def test_negative_approvals_are_refused(self) -> None:
        with pytest.raises(InvalidEnvironments):
            EnvironmentRules(approvals_required=-1)
