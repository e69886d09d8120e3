"""A deployment policy as a JSON document (what the store keeps and the API shows).

    {"environments": [{"name": "dev", "rules": {"approvals_required": 0, ...}}, ...]}

Reading a document builds the domain's frozen data, so every check of
`environments.py` applies (`InvalidEnvironments` naming what is wrong). Environment
names are those the event contracts carry (`dev`, `staging`, `prod`): a deployment's
`status_changed` event names its environment, and v1 of that event knows only these.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from mlplane_contracts.events import DriftSeverity, Environment

from mlplane_deployer.domain.environments import (
    EnvironmentRules,
    EnvironmentSpec,
    FreezeWindow,
    GatewayRoute,
    ServingKind,
    TeamEnvironments,
    WeeklyFreeze,
)
from mlplane_deployer.domain.errors import InvalidEnvironments

CONTRACT_ENVIRONMENTS = frozenset(e.value for e in Environment)


def rules_to_json(rules: EnvironmentRules) -> dict[str, Any]:
    return {
        "require_passed_scan": rules.require_passed_scan,
        "require_healthy_in_previous": rules.require_healthy_in_previous,
        "approvals_required": rules.approvals_required,
        "require_lineage": rules.require_lineage,
        "serving": rules.serving.value,
        "follows_alias": rules.follows_alias,
        "canary_weights": list(rules.canary_weights),
        "canary_hold_s": rules.canary_hold_s,
        "gateway": None
        if rules.gateway is None
        else {
            "name": rules.gateway.name,
            "namespace": rules.gateway.namespace,
            "hostname": rules.gateway.hostname,
        },
        "rollback_on_failure": rules.rollback_on_failure,
        "rollback_on_drift": (
            None if rules.rollback_on_drift is None else rules.rollback_on_drift.value
        ),
        "freeze_windows": [
            {"start": w.start.isoformat(), "end": w.end.isoformat(), "reason": w.reason}
            for w in rules.freeze_windows
        ],
        "weekly_freezes": [
            {
                "timezone": w.timezone,
                "start_day": w.start_day,
                "start_time": w.start_time.isoformat(),
                "end_day": w.end_day,
                "end_time": w.end_time.isoformat(),
                "reason": w.reason,
            }
            for w in rules.weekly_freezes
        ],
    }


def rules_from_json(data: dict[str, Any]) -> EnvironmentRules:
    """Raises `InvalidEnvironments` for a value the rules refuse. A document stored before
    a rule existed reads as that rule's default (no canary, no rollback on drift)."""
    try:
        gateway = data.get("gateway")
        drift = data.get("rollback_on_drift")
        return EnvironmentRules(
            require_passed_scan=bool(data.get("require_passed_scan", True)),
            require_healthy_in_previous=bool(data.get("require_healthy_in_previous", True)),
            approvals_required=int(data.get("approvals_required", 0)),
            require_lineage=bool(data.get("require_lineage", False)),
            serving=ServingKind(data.get("serving", ServingKind.KUSTOMIZE.value)),
            follows_alias=data.get("follows_alias"),
            canary_weights=tuple(int(w) for w in data.get("canary_weights") or ()),
            canary_hold_s=int(data.get("canary_hold_s", 0)),
            gateway=None
            if gateway is None
            else GatewayRoute(gateway["name"], gateway["namespace"], gateway.get("hostname")),
            rollback_on_failure=bool(data.get("rollback_on_failure", True)),
            rollback_on_drift=None if drift is None else DriftSeverity(drift),
            freeze_windows=tuple(
                FreezeWindow(
                    datetime.fromisoformat(w["start"]),
                    datetime.fromisoformat(w["end"]),
                    w.get("reason", "freeze"),
                )
                for w in data.get("freeze_windows", ())
            ),
            weekly_freezes=tuple(
                WeeklyFreeze(
                    timezone=w["timezone"],
                    start_day=int(w["start_day"]),
                    start_time=time.fromisoformat(w["start_time"]),
                    end_day=int(w["end_day"]),
                    end_time=time.fromisoformat(w["end_time"]),
                    reason=w.get("reason", "weekly freeze"),
                )
                for w in data.get("weekly_freezes", ())
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidEnvironments(f"invalid environment rules: {exc}") from None


def environments_to_json(environments: TeamEnvironments) -> dict[str, Any]:
    return {
        "environments": [
            {"name": spec.name, "rules": rules_to_json(spec.rules)}
            for spec in environments.environments
        ]
    }


def environments_from_json(team: str, data: dict[str, Any]) -> TeamEnvironments:
    """Raises `InvalidEnvironments` for a document the domain refuses, or an environment
    name the event contracts cannot carry."""
    specs = []
    for item in data.get("environments", ()):
        name = str(item.get("name", ""))
        check_contract_environment(name)
        specs.append(EnvironmentSpec(name, rules_from_json(dict(item.get("rules", {})))))
    return TeamEnvironments(team, tuple(specs))


def check_contract_environment(name: str) -> None:
    """Raises `InvalidEnvironments` for a name `deployment.status_changed.v1` cannot carry."""
    if name not in CONTRACT_ENVIRONMENTS:
        raise InvalidEnvironments(
            f"environment {name!r}: deployment events name "
            f"{', '.join(sorted(CONTRACT_ENVIRONMENTS))} only",
            field="environments",
        )
