"""The service's one seam onto the drift statistics (profile, window, detect, severity):
summarise a batch, judge a window from its partial summaries, step the hysteresis.

Pure and synchronous: callers run these off the event loop (`asyncio.to_thread`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from mlplane_drift.detect import DriftConfig, DriftVerdict, detect
from mlplane_drift.domain.errors import InvalidSamples
from mlplane_drift.domain.samples import SampleRow, columns_of
from mlplane_drift.errors import DriftInputError
from mlplane_drift.profile import ReferenceProfile
from mlplane_drift.severity import Hysteresis, HysteresisState, severity_of
from mlplane_drift.window import WindowSummary


def summarise(
    profile: ReferenceProfile, samples: Sequence[SampleRow] | pa.Table
) -> tuple[bytes, int]:
    """One batch as a window summary's bytes, and how many samples it holds.

    Raises `InvalidSamples` when the batch does not fit the profile (unknown or
    mistyped features, nothing but missing values, empty).
    """
    data: pa.Table | dict[str, list[Any]]
    if isinstance(samples, pa.Table):
        if samples.num_rows == 0:
            raise InvalidSamples("the file holds no samples")
        data = samples
    else:
        data = columns_of(samples, profile.names)
    summary = WindowSummary.empty(profile)
    try:
        summary.add(data)
    except DriftInputError as exc:
        raise InvalidSamples(exc.detail, **exc.extensions) from exc
    return summary.to_bytes(), summary.count


def merged_bytes(profile: ReferenceProfile, partials: Sequence[bytes]) -> bytes:
    """Several partial summaries of one window as one (exact: see `window`)."""
    merged = WindowSummary.empty(profile)
    for blob in partials:
        merged = merged.merge(WindowSummary.from_bytes(blob, profile))
    return merged.to_bytes()


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: DriftVerdict
    window: WindowSummary


def judge(profile: ReferenceProfile, partials: Sequence[bytes], config: DriftConfig) -> Judgement:
    """The verdict on a window made of `partials` (merged: the order does not matter).

    Raises `DriftInputError` (a partial that does not fit the profile: corrupt data).
    """
    merged = WindowSummary.empty(profile)
    for blob in partials:
        merged = merged.merge(WindowSummary.from_bytes(blob, profile))
    return Judgement(detect(profile, merged, config), merged)


@dataclass(frozen=True, slots=True)
class Alerting:
    fire: bool
    severity: str | None
    state: dict[str, Any]


def alert(state: dict[str, Any] | None, verdict: DriftVerdict, rearm_after: int) -> Alerting:
    """Step the hysteresis stored as `state` with `verdict`: whether to fire, at which
    severity, and the state to store for the next window."""
    before = HysteresisState() if state is None else HysteresisState.from_dict(state)
    severity = severity_of(verdict)
    after, fired = Hysteresis(rearm_after=rearm_after).step(before, severity)
    return Alerting(
        fire=fired is not None,
        severity=None if severity is None else str(fired or severity),
        state=after.to_dict(),
    )
