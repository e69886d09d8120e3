"""A deployment's phases and the moves between them, as one pure function.

    pending ──► committed ──► syncing ──► healthy ◄──► degraded
       │            │            │           │            │
       └────────────┴────────────┴──► failed ◄────────────┘
    committed, syncing, healthy, degraded, failed ──► rolled_back (a revert commit)

`rolled_back` is final. A new sync of the same commit (Argo CD re-syncing after a
drift) moves `healthy` or `degraded` back to `syncing`. Observing the phase a
deployment is already in is no change (watches repeat themselves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mlplane_contracts.events import DeploymentPhase

from mlplane_deployer.domain.errors import InvalidPhaseTransition

P = DeploymentPhase

DEPLOYER_PHASES: Final = frozenset(
    {P.PENDING, P.COMMITTED, P.SYNCING, P.HEALTHY, P.DEGRADED, P.FAILED, P.ROLLED_BACK}
)

ALLOWED: Final[dict[DeploymentPhase, frozenset[DeploymentPhase]]] = {
    P.PENDING: frozenset({P.COMMITTED, P.FAILED}),
    P.COMMITTED: frozenset({P.SYNCING, P.HEALTHY, P.DEGRADED, P.FAILED, P.ROLLED_BACK}),
    P.SYNCING: frozenset({P.HEALTHY, P.DEGRADED, P.FAILED, P.ROLLED_BACK}),
    P.HEALTHY: frozenset({P.SYNCING, P.DEGRADED, P.FAILED, P.ROLLED_BACK}),
    P.DEGRADED: frozenset({P.SYNCING, P.HEALTHY, P.FAILED, P.ROLLED_BACK}),
    P.FAILED: frozenset({P.ROLLED_BACK}),
    P.ROLLED_BACK: frozenset(),
}

TERMINAL: Final = frozenset({P.ROLLED_BACK})

WAITING_FOR_HEALTH: Final = frozenset({P.COMMITTED, P.SYNCING, P.DEGRADED})
"""Phases in which a deployment waits for its commit to be healthy: its deadline runs from
when it entered the first of them (a move between them keeps the clock running)."""


def waiting_starts(current: DeploymentPhase, target: DeploymentPhase, new_commit: bool) -> bool:
    """Whether moving to `target` starts a new wait for health (a new commit always does)."""
    return target in WAITING_FOR_HEALTH and (new_commit or current not in WAITING_FOR_HEALTH)


@dataclass(frozen=True, slots=True)
class PhaseChange:
    previous: DeploymentPhase
    phase: DeploymentPhase
    caused_by: str
    reason: str | None = None


def transition(
    current: DeploymentPhase,
    target: DeploymentPhase,
    *,
    caused_by: str,
    reason: str | None = None,
) -> PhaseChange | None:
    """The change from `current` to `target`, or None when they are the same phase.

    Raises `InvalidPhaseTransition` when the move is not allowed, or when either
    phase is one the deployer does not use (`rejected`, `rendered`, ...).
    """
    for phase in (current, target):
        if phase not in DEPLOYER_PHASES:
            raise InvalidPhaseTransition(f"the deployer has no phase {phase.value!r}")
    if current is target:
        return None
    if target not in ALLOWED[current]:
        raise InvalidPhaseTransition(
            f"a deployment cannot move from {current.value} to {target.value}",
            phase=current.value,
            target=target.value,
        )
    return PhaseChange(previous=current, phase=target, caused_by=caused_by, reason=reason)
