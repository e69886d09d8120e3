"""Use cases of a team's deployment policy: read it, replace its environments, change one
environment's rules. Every change is the next version; none commits (the caller's unit
of work does)."""

from __future__ import annotations

from dataclasses import dataclass

from mlplane_deployer.domain.environments import EnvironmentRules, TeamEnvironments
from mlplane_deployer.domain.errors import PolicyChanged
from mlplane_deployer.domain.policy import DeploymentPolicy, default_policy
from mlplane_deployer.domain.policy_document import (
    check_contract_environment,
    environments_from_json,
    environments_to_json,
)
from mlplane_deployer.store import DeploymentStore


@dataclass(frozen=True, slots=True)
class PolicyView:
    """A team's policy as stored: version 0 is the default (never stored)."""

    policy: DeploymentPolicy
    changed_by: str | None

    @property
    def etag(self) -> str:
        return f'"policy-{self.policy.version}"'


class PolicyService:
    def __init__(self, store: DeploymentStore) -> None:
        self._store = store

    async def current(self, team: str) -> PolicyView:
        """The team's policy now (the default dev → staging → prod before any edit)."""
        stored = await self._store.current_policy(team)
        if stored is None:
            return PolicyView(default_policy(team), None)
        environments = environments_from_json(team, stored.document)
        return PolicyView(DeploymentPolicy(environments, stored.version), stored.created_by)

    async def replace_environments(
        self, team: str, environments: TeamEnvironments, *, by: str, if_match: str | None
    ) -> PolicyView:
        """Store the next version with `environments`.

        Raises `PolicyChanged` (412) when `if_match` names another version,
        `InvalidEnvironments` for names the events cannot carry.
        """
        for spec in environments.environments:
            check_contract_environment(spec.name)
        current = await self._locked_current(team, if_match)
        return await self._store_next(current.policy.with_environments(environments), by)

    async def change_rules(
        self,
        team: str,
        environment: str,
        rules: EnvironmentRules,
        *,
        by: str,
        if_match: str | None,
    ) -> PolicyView:
        """Store the next version with `environment`'s rules replaced.

        Raises `UnknownEnvironment` (404), `PolicyChanged` (412) as above, and
        `InvalidEnvironments` when the change breaks the list (an alias twice).
        """
        current = await self._locked_current(team, if_match)
        return await self._store_next(current.policy.with_rules(environment, rules), by)

    async def _locked_current(self, team: str, if_match: str | None) -> PolicyView:
        await self._store.lock_team_policy(team)
        current = await self.current(team)
        if if_match is not None and if_match.strip() not in (current.etag, "*"):
            raise PolicyChanged(
                f"the policy is at version {current.policy.version} now",
                version=current.policy.version,
            )
        return current

    async def _store_next(self, policy: DeploymentPolicy, by: str) -> PolicyView:
        document = environments_to_json(policy.environments)
        if not await self._store.insert_policy(policy.team, policy.version, document, by):
            raise PolicyChanged("the policy changed meanwhile", version=policy.version)
        return PolicyView(policy, by)
