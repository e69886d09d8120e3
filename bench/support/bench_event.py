"""The event both sides of the mlplane bus benchmark agree on."""

from __future__ import annotations

from mlplane_contracts.envelope import EventPayload, register_payload

BENCH_TYPE = "io.mlplane.bench.ping.v1"


@register_payload
class BenchPing(EventPayload):
    event_type = BENCH_TYPE
    number: int
    committed_at: float  # wall clock (time.time()): producer and consumer are two processes
