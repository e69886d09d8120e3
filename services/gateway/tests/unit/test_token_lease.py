"""Leased tokens: how many a lease may hold, how its size follows use."""

from __future__ import annotations

from mlplane_gateway.auth.token_bucket import BucketLimit
from mlplane_gateway.auth.token_lease import LEASE_S, MAX_LEASE, Lease, lease_ceiling


class TestCeiling:
    def test_small_bursts_and_slow_rates_are_taken_one_token_at_a_time(self) -> None:
        assert lease_ceiling([BucketLimit(rate=0.1, burst=3)]) == 1
        assert lease_ceiling([BucketLimit(rate=1000, burst=12)]) == 1
        assert lease_ceiling([BucketLimit(rate=2, burst=10_000)]) == 1

    def test_a_tenth_of_the_smallest_burst_and_the_slowest_refill(self) -> None:
        key, team = BucketLimit(rate=50, burst=100), BucketLimit(rate=200, burst=400)
        assert lease_ceiling([key, team]) == 10  # 100 // 10, and 50/s x 0.25 s = 12
        assert lease_ceiling([BucketLimit(rate=20, burst=1000)]) == 5  # 20/s x 0.25 s

    def test_never_more_than_the_maximum(self) -> None:
        assert lease_ceiling([BucketLimit(rate=1e6, burst=1_000_000)]) == MAX_LEASE


class TestLease:
    def test_a_new_lease_has_nothing_to_spend_and_asks_for_one(self) -> None:
        lease = Lease(ceiling=8)
        assert not lease.spend(0.0)
        assert lease.wanted(0.0) == 1

    def test_granted_tokens_are_spent_one_per_request_until_none_is_left(self) -> None:
        lease = Lease(ceiling=8)
        lease.grant(3, now=10.0)  # one for the request that asked, two kept
        assert [lease.spend(10.01), lease.spend(10.02), lease.spend(10.03)] == [True, True, False]

    def test_kept_tokens_are_dropped_once_the_lease_is_over(self) -> None:
        lease = Lease(ceiling=8)
        lease.grant(5, now=10.0)
        assert not lease.spend(10.0 + LEASE_S)

    def test_the_size_doubles_while_leases_are_used_up_quickly_up_to_the_ceiling(self) -> None:
        lease = Lease(ceiling=8)
        now = 0.0
        sizes = []
        for _ in range(6):
            wanted = lease.wanted(now)
            sizes.append(wanted)
            lease.grant(wanted, now)
            while lease.spend(now):
                pass
            now += LEASE_S / 10
        assert sizes == [1, 2, 4, 8, 8, 8]

    def test_the_size_halves_when_a_lease_ends_with_tokens_left(self) -> None:
        lease = Lease(ceiling=8, size=8)
        lease.grant(8, now=0.0)
        assert lease.wanted(LEASE_S * 2) == 4

    def test_a_lease_used_up_slowly_keeps_its_size(self) -> None:
        lease = Lease(ceiling=8, size=4)
        lease.grant(1, now=0.0)
        assert lease.wanted(LEASE_S) == 4

    def test_a_refusal_holds_until_the_buckets_said_a_token_comes(self) -> None:
        lease = Lease(ceiling=8)
        assert lease.refused_for(0.0) == 0.0
        lease.refuse(2.0, now=10.0)
        assert lease.refused_for(11.5) == 0.5
        assert lease.refused_for(12.0) == 0.0
