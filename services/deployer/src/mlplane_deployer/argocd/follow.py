"""From Application events to deployment phase changes, with a deadline to be healthy.

The hosted deployer tells the follower which deployment each Application carries
(`track`: the revision committed, the phase it is in, how long it may take to be
healthy). Each event's status is mapped (`phase_mapping.phase_of`) and moved through
the domain's `transition`, so only changes the domain allows come out; a deployment
that is not healthy by its deadline moves to `failed` with the last status seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from mlplane_contracts.events import DeploymentPhase as P
from mlplane_runtime.waiting import get_within

from mlplane_deployer.argocd.phase_mapping import ArgoStatus, ObservedPhase, phase_of
from mlplane_deployer.argocd.watch import ApplicationEvent, ApplicationWatch
from mlplane_deployer.domain.errors import InvalidPhaseTransition
from mlplane_deployer.domain.phases import (
    TERMINAL,
    WAITING_FOR_HEALTH,
    PhaseChange,
    transition,
)

log = logging.getLogger(__name__)

CAUSED_BY = "argocd"
DELETED_REASON = "the Application was deleted"
_WAITING = WAITING_FOR_HEALTH


@dataclass(frozen=True, slots=True)
class ApplicationPhaseChange:
    """A tracked deployment's phase change, seen on its Application."""

    application: str
    revision: str | None
    change: PhaseChange
    resource_version: str | None


@dataclass(slots=True)
class _Tracked:
    revision: str | None
    phase: P
    timeout_s: float
    deadline: float | None
    last_seen: ArgoStatus | None = None


class PhaseFollower:
    """Per tracked Application: its deployment's phase, and when it must be healthy by."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tracked: dict[str, _Tracked] = {}

    def track(
        self,
        application: str,
        *,
        revision: str | None,
        phase: P = P.COMMITTED,
        timeout_s: float = 600.0,
        elapsed_s: float = 0.0,
    ) -> None:
        """Follow `application` for the deployment at `revision`, now in `phase`, which
        it entered `elapsed_s` ago (a follower restarted, or another replica moved it).

        Tracking again (a new commit for the same model and environment) replaces
        what was tracked and starts a new deadline.
        """
        waiting = phase in _WAITING
        deadline = self._clock() + timeout_s - max(0.0, elapsed_s) if waiting else None
        self._tracked[application] = _Tracked(revision, phase, timeout_s, deadline)

    def revision(self, application: str) -> str | None:
        tracked = self._tracked.get(application)
        return tracked.revision if tracked else None

    def retarget(self, application: str, revision: str) -> None:
        """Follow `application` at `revision` from now on, keeping its phase and deadline
        (a newer commit that leaves this Application's files as they were)."""
        tracked = self._tracked.get(application)
        if tracked is not None:
            tracked.revision = revision

    def forget(self, application: str) -> None:
        self._tracked.pop(application, None)

    def phase(self, application: str) -> P | None:
        tracked = self._tracked.get(application)
        return tracked.phase if tracked else None

    def timeout_s(self, application: str) -> float | None:
        tracked = self._tracked.get(application)
        return tracked.timeout_s if tracked else None

    def next_deadline(self) -> float | None:
        deadlines = [t.deadline for t in self._tracked.values() if t.deadline is not None]
        return min(deadlines, default=None)

    def _move(
        self, application: str, tracked: _Tracked, observed: ObservedPhase, rv: str | None
    ) -> ApplicationPhaseChange | None:
        try:
            change = transition(
                tracked.phase, observed.phase, caused_by=CAUSED_BY, reason=observed.reason
            )
        except InvalidPhaseTransition:
            log.info(
                "argocd: %s shows %s, which %s cannot move to; ignored",
                application,
                observed.phase.value,
                tracked.phase.value,
            )
            return None
        if change is None:
            return None
        tracked.phase = change.phase
        if change.phase in _WAITING:
            if tracked.deadline is None:
                tracked.deadline = self._clock() + tracked.timeout_s
        else:
            tracked.deadline = None
        return ApplicationPhaseChange(application, tracked.revision, change, rv)

    def observe(self, event: ApplicationEvent) -> ApplicationPhaseChange | None:
        """The phase change `event` makes for its tracked deployment, if any."""
        tracked = self._tracked.get(event.name)
        if tracked is None or tracked.phase in TERMINAL:
            return None
        if event.type == "DELETED":
            # Deleted under the deployer: nothing will ever make it healthy.
            observed = ObservedPhase(P.FAILED, DELETED_REASON)
            return self._move(event.name, tracked, observed, event.resource_version)
        if event.status != ArgoStatus():  # an Application Argo CD has not looked at yet
            tracked.last_seen = event.status
        observed_phase = phase_of(event.status, tracked.revision)
        if observed_phase is None:
            return None
        return self._move(event.name, tracked, observed_phase, event.resource_version)

    def expire(self) -> list[ApplicationPhaseChange]:
        """`failed` for each tracked deployment past its deadline, with the reason."""
        now = self._clock()
        changes = []
        for application, tracked in self._tracked.items():
            if tracked.deadline is None or tracked.deadline > now:
                continue
            seen = tracked.last_seen.describe() if tracked.last_seen else "no status from Argo CD"
            reason = (
                f"not healthy within {tracked.timeout_s:g}s of {tracked.phase.value}"
                f" (revision {tracked.revision or 'any'}); last seen {seen}"
            )
            change = self._move(application, tracked, ObservedPhase(P.FAILED, reason), None)
            tracked.deadline = None
            if change is not None:
                changes.append(change)
        return changes


async def follow_phases(
    watch: ApplicationWatch, follower: PhaseFollower
) -> AsyncIterator[ApplicationPhaseChange]:
    """Phase changes of tracked deployments as their Applications change, and timeouts.

    Runs until cancelled; the watch resumes and relists by itself.
    """
    events: asyncio.Queue[ApplicationEvent] = asyncio.Queue()

    async def pump() -> None:
        async for event in watch.events():
            events.put_nowait(event)

    pumping = asyncio.create_task(pump())
    try:
        while True:
            deadline = follower.next_deadline()
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            event = await get_within(events, wait)
            if event is None:
                if pumping.done():
                    pumping.result()
                for change in follower.expire():
                    yield change
                continue
            observed = follower.observe(event)
            if observed is not None:
                yield observed
            for change in follower.expire():
                yield change
    finally:
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pumping
