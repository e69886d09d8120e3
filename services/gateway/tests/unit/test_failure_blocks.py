"""Failure blocks kept in memory: what a published block says, how long a name stays blocked."""

from __future__ import annotations

import pytest
from mlplane_gateway.auth.failure_blocks import BlockedNames, parse_block_message


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_published_block_names_its_time_left_and_the_name() -> None:
    assert parse_block_message(b"1500 ip:10.0.0.1") == ("ip:10.0.0.1", 1.5)
    assert parse_block_message("20 key:ab cd") == ("key:ab cd", 0.02)


@pytest.mark.parametrize("data", [b"", b"1500", b"soon ip:1.2.3.4", b"-5 ip:1.2.3.4", b" x"])
def test_anything_else_is_no_block(data: bytes) -> None:
    assert parse_block_message(data) is None


def test_a_blocked_name_waits_until_its_block_ends() -> None:
    clock = Clock()
    names = BlockedNames(clock=clock)
    names.block("ip:a", 30.0)
    assert names.wait_s(["key:x", "ip:a"]) == 30.0
    clock.now += 10
    assert names.wait_s(["ip:a"]) == 20.0
    clock.now += 20
    assert names.wait_s(["ip:a"]) == 0.0
    assert names.wait_s(["key:x"]) == 0.0


def test_the_longest_block_of_the_names_counts_and_a_shorter_one_never_shortens_it() -> None:
    names = BlockedNames(clock=Clock())
    names.block("ip:a", 5.0)
    names.block("key:b", 20.0)
    names.block("key:b", 1.0)
    assert names.wait_s(["ip:a", "key:b"]) == 20.0


def test_past_its_bound_the_block_ending_first_goes() -> None:
    names = BlockedNames(max_names=2, clock=Clock())
    names.block("a", 50.0)
    names.block("b", 10.0)
    names.block("c", 30.0)
    assert names.wait_s(["b"]) == 0.0
    assert names.wait_s(["a"]) == 50.0
    assert names.wait_s(["c"]) == 30.0
