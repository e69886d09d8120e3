"""A team's environments in promotion order, and each one's rules, as plain data.

A team that never configured its environments gets `default_environments`:
dev → staging → prod. What each rule means is decided in `policy.py`; here the
rules are only data, checked for shape when built.

Defaults: every environment needs the image's latest scan to have passed; staging
and prod need the version healthy in the environment before; prod needs one
approval and lineage (the commit and CI run the version came from), and a severe
drift of the version serving in prod rolls it back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mlplane_contracts.events import DriftSeverity

from mlplane_deployer.domain.errors import InvalidEnvironments, UnknownEnvironment

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
HOSTNAME = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")
MAX_ENVIRONMENTS = 16
MAX_APPROVALS = 10
MAX_FREEZE_WINDOWS = 100
MAX_CANARY_STEPS = 10
MAX_CANARY_HOLD_S = 86_400


class ServingKind(StrEnum):
    """How an environment runs a model: plain Kubernetes objects, or a KServe resource."""

    KUSTOMIZE = "kustomize"
    KSERVE = "kserve"


@dataclass(frozen=True, slots=True)
class FreezeWindow:
    """A one-off range of time in which nothing deploys: `[start, end)`, both aware."""

    start: datetime
    end: datetime
    reason: str = "freeze"

    def __post_init__(self) -> None:
        """Raises `InvalidEnvironments` for naive datetimes or an empty range."""
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise InvalidEnvironments("a freeze window's start and end carry a timezone")
        if self.end <= self.start:
            raise InvalidEnvironments("a freeze window ends after it starts")

    def covers(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class WeeklyFreeze:
    """A freeze that comes back every week, in local time of `timezone` (an IANA name).

    `start_day`/`end_day` are ISO weekdays (1 = Monday). The window is
    `[start_day start_time, end_day end_time)` and may wrap over the week's end
    (Friday 16:00 → Monday 08:00). Local time follows daylight saving: "Friday
    16:00 in Europe/Berlin" is 14:00 UTC in summer and 15:00 UTC in winter.
    """

    timezone: str
    start_day: int
    start_time: time
    end_day: int
    end_time: time
    reason: str = "weekly freeze"

    def __post_init__(self) -> None:
        """Raises `InvalidEnvironments` for an unknown timezone, a bad day or an empty window."""
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidEnvironments(f"unknown timezone {self.timezone!r}") from exc
        for day in (self.start_day, self.end_day):
            if not 1 <= day <= 7:
                raise InvalidEnvironments("weekdays are 1 (Monday) to 7 (Sunday)")
        if self.start_time.tzinfo is not None or self.end_time.tzinfo is not None:
            raise InvalidEnvironments("a weekly freeze's times are local to its timezone")
        if self._offset(self.start_day, self.start_time) == self._offset(
            self.end_day, self.end_time
        ):
            raise InvalidEnvironments("a weekly freeze's start and end differ")

    @staticmethod
    def _offset(day: int, at: time) -> timedelta:
        return timedelta(days=day - 1, hours=at.hour, minutes=at.minute, seconds=at.second)

    def covers(self, at: datetime) -> bool:
        """Whether the aware instant `at` falls in the window, read in local time."""
        local = at.astimezone(ZoneInfo(self.timezone))
        now = self._offset(local.isoweekday(), local.time().replace(tzinfo=None))
        start = self._offset(self.start_day, self.start_time)
        end = self._offset(self.end_day, self.end_time)
        if start < end:
            return start <= now < end
        return now >= start or now < end  # wraps over Sunday → Monday


@dataclass(frozen=True, slots=True)
class GatewayRoute:
    """The Gateway API `Gateway` a canary's `HTTPRoute` attaches to."""

    name: str
    namespace: str
    hostname: str | None = None

    def __post_init__(self) -> None:
        """Raises `InvalidEnvironments` for names Kubernetes refuses."""
        for what, value in (("name", self.name), ("namespace", self.namespace)):
            if not DNS_LABEL.match(value):
                raise InvalidEnvironments(f"gateway {what} {value!r} is not a DNS label")
        if self.hostname is not None and not HOSTNAME.match(self.hostname):
            raise InvalidEnvironments(f"gateway hostname {self.hostname!r} is not a hostname")


@dataclass(frozen=True, slots=True)
class EnvironmentRules:
    """What a deployment to one environment must satisfy, and how it is served.

    - `require_passed_scan`: the digest's latest scan verdict is `passed` under the
      scanner's current policy.
    - `require_healthy_in_previous`: the same version is `healthy` in the
      environment before this one (ignored for the first environment).
    - `approvals_required`: distinct principals holding `deploy:approve`, never
      the requester.
    - `freeze_windows`, `weekly_freezes`: no deployment while one covers the time.
    - `require_lineage`: the version names the commit and CI run it came from.
    - `serving`: Kustomize objects or a KServe `InferenceService`.
    - `follows_alias`: the registry alias whose moves deploy here (`champion`).
    - `canary_weights`: traffic steps of a new version against the one serving
      (`(10, 50, 100)`), increasing, ending at 100; each step is its own commit and
      the next one waits for the health gate. Empty: the version takes all at once.
    - `canary_hold_s`: how long the Application must stay healthy at a step before
      the next one is committed (the gate); 0: as soon as it is healthy.
    - `gateway`: the Gateway the model's `HTTPRoute` attaches to (a Kustomize
      canary splits traffic with it).
    - `rollback_on_failure`: a deployment whose health fails (Argo CD reports a
      failed sync, or it is not healthy in time) is reverted by itself.
    - `rollback_on_drift`: a `drift.detected` of at least this severity for the
      version serving here reverts it; None: drift never rolls back.
    """

    require_passed_scan: bool = True
    require_healthy_in_previous: bool = True
    approvals_required: int = 0
    freeze_windows: tuple[FreezeWindow, ...] = ()
    weekly_freezes: tuple[WeeklyFreeze, ...] = ()
    require_lineage: bool = False
    serving: ServingKind = ServingKind.KUSTOMIZE
    follows_alias: str | None = None
    canary_weights: tuple[int, ...] = ()
    canary_hold_s: int = 0
    gateway: GatewayRoute | None = None
    rollback_on_failure: bool = True
    rollback_on_drift: DriftSeverity | None = None

    def __post_init__(self) -> None:
        """Raises `InvalidEnvironments` for an impossible approval count, too many windows,
        canary steps that do not climb to 100, or a Kustomize canary without a gateway."""
        if not 0 <= self.approvals_required <= MAX_APPROVALS:
            raise InvalidEnvironments(f"approvals_required is between 0 and {MAX_APPROVALS}")
        if len(self.freeze_windows) + len(self.weekly_freezes) > MAX_FREEZE_WINDOWS:
            raise InvalidEnvironments(f"at most {MAX_FREEZE_WINDOWS} freeze windows")
        if self.follows_alias is not None and not DNS_LABEL.match(self.follows_alias):
            raise InvalidEnvironments("an alias followed is a DNS label", field="follows_alias")
        weights = self.canary_weights
        if weights:
            if len(weights) > MAX_CANARY_STEPS:
                raise InvalidEnvironments(f"at most {MAX_CANARY_STEPS} canary steps")
            if any(not 1 <= w <= 100 for w in weights) or list(weights) != sorted(set(weights)):
                raise InvalidEnvironments(
                    "canary weights climb strictly, each 1 to 100", field="canary_weights"
                )
            if weights[-1] != 100:
                raise InvalidEnvironments("the last canary step is 100", field="canary_weights")
            if self.serving is ServingKind.KUSTOMIZE and self.gateway is None and len(weights) > 1:
                raise InvalidEnvironments(
                    "a canary splits traffic with an HTTPRoute: name the gateway",
                    field="gateway",
                )
        if not 0 <= self.canary_hold_s <= MAX_CANARY_HOLD_S:
            raise InvalidEnvironments(f"canary_hold_s is 0 to {MAX_CANARY_HOLD_S}")


@dataclass(frozen=True, slots=True)
class EnvironmentSpec:
    name: str
    rules: EnvironmentRules = field(default_factory=EnvironmentRules)

    def __post_init__(self) -> None:
        """Raises `InvalidEnvironments` for a name that is not a DNS label."""
        if not DNS_LABEL.match(self.name):
            raise InvalidEnvironments(f"environment name {self.name!r} is not a DNS label")


@dataclass(frozen=True, slots=True)
class TeamEnvironments:
    """A team's environments, first to last in promotion order."""

    team: str
    environments: tuple[EnvironmentSpec, ...]

    def __post_init__(self) -> None:
        """Raises `InvalidEnvironments` for no environments, too many, or a name twice."""
        if not DNS_LABEL.match(self.team):
            raise InvalidEnvironments(f"team {self.team!r} is not a DNS label")
        if not 1 <= len(self.environments) <= MAX_ENVIRONMENTS:
            raise InvalidEnvironments(f"a team has 1 to {MAX_ENVIRONMENTS} environments")
        names = [spec.name for spec in self.environments]
        if len(set(names)) != len(names):
            raise InvalidEnvironments("each environment name appears once")
        aliases = [s.rules.follows_alias for s in self.environments if s.rules.follows_alias]
        if len(set(aliases)) != len(aliases):
            raise InvalidEnvironments("an alias is followed by one environment at most")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.environments)

    def get(self, name: str) -> EnvironmentSpec:
        """Raises `UnknownEnvironment` when the team has no environment `name`."""
        for spec in self.environments:
            if spec.name == name:
                return spec
        raise UnknownEnvironment(
            f"team {self.team!r} has no environment {name!r}", environments=list(self.names)
        )

    def previous(self, name: str) -> EnvironmentSpec | None:
        """The environment before `name`, or None for the first; raises `UnknownEnvironment`."""
        index = self.environments.index(self.get(name))
        return self.environments[index - 1] if index > 0 else None

    def next(self, name: str) -> EnvironmentSpec | None:
        """The environment `name` promotes to, or None for the last; raises `UnknownEnvironment`."""
        index = self.environments.index(self.get(name))
        return self.environments[index + 1] if index + 1 < len(self.environments) else None

    def following(self, alias: str) -> EnvironmentSpec | None:
        """The environment that follows `alias`, if any."""
        for spec in self.environments:
            if spec.rules.follows_alias == alias:
                return spec
        return None

    def with_rules(self, name: str, rules: EnvironmentRules) -> TeamEnvironments:
        """A copy with `name`'s rules replaced; raises `UnknownEnvironment`."""
        self.get(name)
        return TeamEnvironments(
            self.team,
            tuple(
                EnvironmentSpec(s.name, rules) if s.name == name else s for s in self.environments
            ),
        )


def default_environments(team: str) -> TeamEnvironments:
    """dev → staging → prod with the defaults the module docstring names."""
    return TeamEnvironments(
        team,
        (
            EnvironmentSpec("dev", EnvironmentRules(require_healthy_in_previous=False)),
            EnvironmentSpec("staging", EnvironmentRules()),
            EnvironmentSpec(
                "prod",
                EnvironmentRules(
                    approvals_required=1,
                    require_lineage=True,
                    rollback_on_drift=DriftSeverity.SEVERE,
                ),
            ),
        ),
    )


def team_environments(team: str, specs: Iterable[EnvironmentSpec]) -> TeamEnvironments:
    """Build a team's environments from specs in promotion order; raises `InvalidEnvironments`."""
    return TeamEnvironments(team, tuple(specs))
