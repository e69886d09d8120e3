"""What a benchmark run reports: throughput and latency percentiles."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RunFigures:
    events: int
    seconds: float
    events_per_s: float
    p50_ms: float
    p99_ms: float

    @classmethod
    def from_samples(cls, events: int, seconds: float, latencies_s: list[float]) -> RunFigures:
        cuts = statistics.quantiles(latencies_s, n=100, method="inclusive")
        return cls(
            events=events,
            seconds=round(seconds, 3),
            events_per_s=round(events / seconds, 1),
            p50_ms=round(cuts[49] * 1000, 2),
            p99_ms=round(cuts[98] * 1000, 2),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
