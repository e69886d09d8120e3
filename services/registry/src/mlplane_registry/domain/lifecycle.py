"""A model version's lifecycle, fed by other services' events. No I/O.

A version's lifecycle is fed by events from other services (builder, scanner,
deployer). Competing consumers reorder events, so the lifecycle is a fold of
*facts*, each stamped with the time it happened (and the producer's per-subject
sequence): the newest fact of each kind wins, an older one is stale and ignored,
and a fact that contradicts a newer fact of another kind is refused. The stage
people see is derived from the facts:

    registered → building → built | build_failed → scanned(passed|failed) → deployed(env)

A later-stage fact implies the earlier ones (a scan implies a build), so a scan
that arrives before its build result moves the version straight to `scanned`, and
the late build result is recorded without moving it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from mlplane_registry.domain.errors import InvalidTransition

# -- lifecycle ------------------------------------------------------------------------


class VersionStage(StrEnum):
    REGISTERED = "registered"
    BUILDING = "building"
    BUILT = "built"
    BUILD_FAILED = "build_failed"
    SCANNED = "scanned"
    DEPLOYED = "deployed"


class BuildStatus(StrEnum):
    BUILDING = "building"
    BUILT = "built"
    FAILED = "build_failed"


# Deployment phases in which the version serves (or is about to) in an environment.
SERVING_PHASES = frozenset({"healthy", "progressing", "degraded"})


@dataclass(frozen=True, slots=True, order=True)
class EventStamp:
    """When a fact happened, as its producer said; ordered by time, then sequence.

    `sequence` is the producer's per-subject outbox sequence; it breaks ties between
    two facts stamped with the same instant.
    """

    at: datetime
    sequence: int = -1

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "sequence": self.sequence}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EventStamp:
        return cls(datetime.fromisoformat(data["at"]), int(data["sequence"]))


@dataclass(frozen=True, slots=True)
class BuildFact:
    status: BuildStatus
    stamp: EventStamp
    image: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ScanFact:
    verdict: str  # "passed" | "failed"
    stamp: EventStamp
    image: str | None = None
    report_uri: str | None = None


@dataclass(frozen=True, slots=True)
class DeploymentFact:
    phase: str
    stamp: EventStamp
    deployment_id: str | None = None


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """What a version went through: its newest build, scan and per-environment deployment."""

    build: BuildFact | None = None
    scan: ScanFact | None = None
    deployments: dict[str, DeploymentFact] = field(default_factory=dict)

    @property
    def stage(self) -> VersionStage:
        if self.deployed_environments:
            return VersionStage.DEPLOYED
        if self.scan is not None:
            return VersionStage.SCANNED
        if self.build is not None:
            return VersionStage(self.build.status.value)
        return VersionStage.REGISTERED

    @property
    def scan_verdict(self) -> str | None:
        return None if self.scan is None else self.scan.verdict

    @property
    def deployed_environments(self) -> tuple[str, ...]:
        """Environments where this version serves now, sorted."""
        return tuple(
            sorted(env for env, fact in self.deployments.items() if fact.phase in SERVING_PHASES)
        )

    def as_json(self) -> dict[str, Any]:
        build = self.build
        scan = self.scan
        return {
            "build": None
            if build is None
            else {
                "status": build.status.value,
                "stamp": build.stamp.as_json(),
                "image": build.image,
                "reason": build.reason,
            },
            "scan": None
            if scan is None
            else {
                "verdict": scan.verdict,
                "stamp": scan.stamp.as_json(),
                "image": scan.image,
                "report_uri": scan.report_uri,
            },
            "deployments": {
                env: {
                    "phase": fact.phase,
                    "stamp": fact.stamp.as_json(),
                    "deployment_id": fact.deployment_id,
                }
                for env, fact in sorted(self.deployments.items())
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Lifecycle:
        if not data:
            return cls()
        build = data.get("build")
        scan = data.get("scan")
        return cls(
            build=None
            if build is None
            else BuildFact(
                BuildStatus(build["status"]),
                EventStamp.from_json(build["stamp"]),
                build.get("image"),
                build.get("reason"),
            ),
            scan=None
            if scan is None
            else ScanFact(
                scan["verdict"],
                EventStamp.from_json(scan["stamp"]),
                scan.get("image"),
                scan.get("report_uri"),
            ),
            deployments={
                env: DeploymentFact(
                    fact["phase"], EventStamp.from_json(fact["stamp"]), fact.get("deployment_id")
                )
                for env, fact in (data.get("deployments") or {}).items()
            },
        )


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of applying a fact: the new lifecycle, or the old one and why it is unchanged."""

    lifecycle: Lifecycle
    stale: bool = False
    reason: str | None = None


def apply_build(lifecycle: Lifecycle, fact: BuildFact) -> Applied:
    """Apply a build result (or the start of a build).

    Stale (ignored) when a newer build fact is already known. Raises
    `InvalidTransition` when the version was scanned before this fact happened: a
    scanned image is never rebuilt, so a later build result contradicts the scan.
    """
    current = lifecycle.build
    if current is not None and fact.stamp <= current.stamp:
        return Applied(lifecycle, stale=True, reason=_older("build", fact.stamp, current.stamp))
    scan = lifecycle.scan
    if scan is not None and fact.stamp > scan.stamp and _same_image_again(current, fact):
        # Builds are reproducible: a rebuild that gives back the scanned image changes
        # nothing the scan said.
        return Applied(lifecycle, stale=True, reason="rebuilt the same image that was scanned")
    if scan is not None and fact.stamp > scan.stamp:
        raise InvalidTransition(
            f"cannot move to {fact.status.value}: the version was already scanned "
            f"({scan.verdict}) at {scan.stamp.at.isoformat()}, before this build result "
            f"at {fact.stamp.at.isoformat()}; a scanned version is never rebuilt",
            stage=lifecycle.stage.value,
            attempted=fact.status.value,
        )
    return Applied(replace(lifecycle, build=fact))


def _same_image_again(current: BuildFact | None, fact: BuildFact) -> bool:
    """Whether `fact` is a build start or a build of the image `current` already built."""
    if current is None or current.status is not BuildStatus.BUILT or current.image is None:
        return False
    if fact.status is BuildStatus.BUILDING:
        return True
    return fact.status is BuildStatus.BUILT and fact.image == current.image


def apply_scan(lifecycle: Lifecycle, fact: ScanFact) -> Applied:
    """Apply a scan verdict (a rescan replaces an older verdict).

    Stale when a newer scan is known. Raises `InvalidTransition` when the newest
    build fact is a failure or a build in progress that happened after this scan
    (there was no image to scan then).
    """
    current = lifecycle.scan
    if current is not None and fact.stamp <= current.stamp:
        return Applied(lifecycle, stale=True, reason=_older("scan", fact.stamp, current.stamp))
    build = lifecycle.build
    if build is not None and build.status is not BuildStatus.BUILT and build.stamp > fact.stamp:
        raise InvalidTransition(
            f"cannot move to scanned: the build is {build.status.value} since "
            f"{build.stamp.at.isoformat()}, after this scan at {fact.stamp.at.isoformat()}",
            stage=lifecycle.stage.value,
            attempted=VersionStage.SCANNED.value,
        )
    return Applied(replace(lifecycle, scan=fact))


def apply_deployment(lifecycle: Lifecycle, environment: str, fact: DeploymentFact) -> Applied:
    """Apply a deployment's phase in `environment` (each environment has its own history).

    Stale when a newer fact of that environment is known. Raises
    `InvalidTransition` when the version cannot serve: its newest build failed (no
    image), or its scan failed before this deployment started serving.
    """
    current = lifecycle.deployments.get(environment)
    if current is not None and fact.stamp <= current.stamp:
        return Applied(
            lifecycle,
            stale=True,
            reason=_older(f"deployment in {environment}", fact.stamp, current.stamp),
        )
    if fact.phase in SERVING_PHASES:
        build = lifecycle.build
        if build is not None and build.status is BuildStatus.FAILED and lifecycle.scan is None:
            raise InvalidTransition(
                f"cannot move to deployed({environment}): the build failed "
                f"({build.reason or 'no reason given'}), there is no image to serve",
                stage=lifecycle.stage.value,
                attempted=VersionStage.DEPLOYED.value,
            )
        scan = lifecycle.scan
        if scan is not None and scan.verdict == "failed" and scan.stamp < fact.stamp:
            raise InvalidTransition(
                f"cannot move to deployed({environment}): the scan failed at "
                f"{scan.stamp.at.isoformat()}, before this deployment",
                stage=lifecycle.stage.value,
                attempted=VersionStage.DEPLOYED.value,
            )
    deployments = {**lifecycle.deployments, environment: fact}
    return Applied(replace(lifecycle, deployments=deployments))


def _older(kind: str, stamp: EventStamp, current: EventStamp) -> str:
    return (
        f"stale {kind} fact at {stamp.at.isoformat()} (sequence {stamp.sequence}): "
        f"a newer one at {current.at.isoformat()} (sequence {current.sequence}) is applied"
    )
