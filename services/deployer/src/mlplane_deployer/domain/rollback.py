"""When the deployer rolls a deployment back by itself: pure rules, no I/O.

A rollback is always a revert commit of the deployment's commits. Besides the API,
two things ask for one: the deployment's health failing (Argo CD reports a failed
sync, or it was not healthy in time) where the environment rolls back on failure,
and a `drift.detected` for the version serving in the environment, of at least the
severity the environment names.
"""

from __future__ import annotations

from mlplane_contracts.events import DriftSeverity

from mlplane_deployer.domain.environments import EnvironmentRules

_RANK = {DriftSeverity.WARNING: 1, DriftSeverity.SEVERE: 2}


def drift_rolls_back(rules: EnvironmentRules, severity: DriftSeverity) -> bool:
    """Whether a drift of `severity` rolls back what serves under `rules`."""
    threshold = rules.rollback_on_drift
    return threshold is not None and _RANK[severity] >= _RANK[threshold]


def drift_cause(event_id: str) -> str:
    """Who a drift-triggered rollback names as having caused it."""
    return f"drift:{event_id}"


def health_cause(caused_by: str) -> str:
    """Who a health-triggered rollback names as having caused it (`health:argocd`)."""
    return f"health:{caused_by}"
