"""Tokens taken from the shared buckets ahead of use, then spent here without a round trip.

A bucket in Redis costs a round trip per request, most of what rate limiting costs
the gateway. So a process that sees one principal call often takes several tokens
of its buckets at once (a lease) and spends them locally, one per request, for at
most `LEASE_S`.

Never more is spent than the buckets gave: a lease's tokens are taken from every
bucket of the principal before any is spent, and the tokens a lease still holds
when its time is up are dropped, not given back. The limit is then stricter for a
moment, never looser. To keep that loss small the lease size adapts: it starts at
one token, doubles while leases are used up within half their time, and halves
when one runs out of time with tokens left. It never exceeds `lease_ceiling`: a
tenth of the smallest burst (a process holds little of a bucket other processes
share) and what the slowest bucket refills in `LEASE_S`. So a small burst or a
slow rate is taken one token per request, exactly as without leases.

A refusal is kept too: the buckets said when their next token comes, and until
then (other processes only take tokens) every request of the principal is refused
here, without asking again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlplane_gateway.auth.token_bucket import BucketLimit

LEASE_S = 0.25
"""How long a lease's tokens may be spent."""
MAX_LEASE = 64
BURST_SHARE = 10
"""A lease holds at most 1/BURST_SHARE of a bucket's burst."""


def lease_ceiling(limits: Sequence[BucketLimit]) -> int:
    """The most tokens one lease may take from buckets with these limits (at least 1)."""
    ceiling = MAX_LEASE
    for limit in limits:
        ceiling = min(ceiling, limit.burst // BURST_SHARE, int(limit.rate * LEASE_S))
    return max(1, ceiling)


@dataclass(slots=True)
class Lease:
    """One principal's leased tokens in this process. Not thread-safe (the event loop's)."""

    ceiling: int
    tokens: int = 0
    expires_at: float = 0.0
    granted_at: float | None = None
    size: int = 1
    """Tokens the next lease asks for."""
    empty_until: float = 0.0
    """When the buckets that last refused have a token again."""

    def spend(self, now: float) -> bool:
        """Take one leased token: False when none is left or the lease's time is up."""
        if self.tokens > 0 and now < self.expires_at:
            self.tokens -= 1
            return True
        return False

    def refused_for(self, now: float) -> float:
        """Seconds until the buckets that last refused have a token (0: ask them)."""
        return max(0.0, self.empty_until - now)

    def refuse(self, wait_s: float, now: float) -> None:
        """The buckets had no token for this principal for `wait_s` more seconds."""
        self.empty_until = now + wait_s

    def wanted(self, now: float) -> int:
        """Tokens to ask the buckets for, now that `spend` said no; adapts the size."""
        if self.tokens > 0:
            # Ran out of time with tokens left: more was leased than was used.
            self.size = max(1, self.size // 2)
            self.tokens = 0
        elif self.granted_at is not None and now - self.granted_at < LEASE_S / 2:
            self.size = min(self.ceiling, self.size * 2)
        return min(self.size, self.ceiling)

    def grant(self, granted: int, now: float) -> None:
        """The buckets gave `granted` (>= 1) tokens: one is this request's, the rest kept."""
        self.tokens = granted - 1
        self.granted_at = now
        self.expires_at = now + LEASE_S
