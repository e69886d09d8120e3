"""Canary steps and the health gate between them, as pure rules.

A deployment whose environment names canary weights (10 → 50 → 100) lands one commit
per step. Step 0 is committed as any deployment is; each later step waits for the
gate: the Application healthy at the step before, and still healthy once the
environment's hold time has passed (a phase change meanwhile closes the gate, and
the next `healthy` opens it again with a fresh hold). A step at 100 renders the new
version alone. With no version serving in the environment yet there is nothing to
weigh the canary against: the deployment takes 100 at once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CanaryStep:
    """One step: its index, its weight, and how many steps there are."""

    index: int
    weight: int
    of: int

    @property
    def is_last(self) -> bool:
        return self.index == self.of - 1

    @property
    def splits_traffic(self) -> bool:
        """Below 100 the new version runs beside the stable one and takes `weight`%."""
        return self.weight < 100

    def describe(self) -> str:
        return f"canary step {self.index + 1}/{self.of} at {self.weight}%"


def step_of(weights: tuple[int, ...], index: int | None) -> CanaryStep | None:
    """The step at `index` of `weights` (None: no canary, or past the last step)."""
    if index is None or not 0 <= index < len(weights):
        return None
    return CanaryStep(index, weights[index], len(weights))


def steps_for(weights: tuple[int, ...], has_stable: bool) -> tuple[int, ...]:
    """The steps a new deployment takes: none when no version serves there yet."""
    return weights if has_stable and len(weights) > 1 else ()


def next_step_due(weights: tuple[int, ...], committed: int | None) -> CanaryStep | None:
    """The step after the one committed, when there is one to take."""
    if committed is None:
        return None
    return step_of(weights, committed + 1)
