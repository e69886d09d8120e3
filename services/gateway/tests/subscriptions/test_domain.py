"""Matching, sink URLs and the retry schedule: pure rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mlplane_gateway.subscriptions.domain import (
    EventFilter,
    InvalidSink,
    RetrySchedule,
    Subscription,
    check_sink_addresses,
    check_type_prefixes,
    matches,
    parse_allowlist,
    parse_sink_url,
    sink_key,
)
from mlplane_runtime.errors import InvalidInput

from .conftest import MakeEvent


def subscription(team: str, **fields: object) -> Subscription:
    values: dict[str, object] = {
        "id": "sub1",
        "team": team,
        "sink_url": "https://hooks.example.com/x",
        "types": (),
        "subject_prefix": None,
        "secret": "s" * 32,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        **fields,
    }
    return Subscription(**values)  # type: ignore[arg-type]


class TestMatches:
    def test_no_filters_match_every_event_of_the_team(
        self, make_event: MakeEvent, team: str
    ) -> None:
        assert matches(subscription(team), make_event())
        assert not matches(subscription(team), make_event(of_team="another-team"))

    def test_type_prefixes(self, make_event: MakeEvent, team: str) -> None:
        sub = subscription(team, types=("io.mlplane.model.", "io.mlplane.drift."))
        assert matches(sub, make_event("io.mlplane.model.alias.changed.v1"))
        assert matches(sub, make_event("io.mlplane.drift.detected.v1"))
        assert not matches(sub, make_event("io.mlplane.image.built.v1"))

    def test_subject_prefix(self, make_event: MakeEvent, team: str) -> None:
        sub = subscription(team, subject_prefix="models/fraud/")
        assert matches(sub, make_event(subject="models/fraud/versions/2"))
        assert not matches(sub, make_event(subject="models/churn/versions/2"))

    def test_a_disabled_subscription_matches_nothing(
        self, make_event: MakeEvent, team: str
    ) -> None:
        assert not matches(subscription(team, disabled=True), make_event())

    def test_the_operators_filter_sees_every_team(self) -> None:
        assert EventFilter(team=None).accepts("io.mlplane.x", None, "anyone")
        assert not EventFilter(team=None, subject_prefix="m").accepts("io.mlplane.x", None, "a")

    def test_type_prefixes_are_checked(self) -> None:
        assert check_type_prefixes(["b", "a", "b"]) == ("a", "b")
        with pytest.raises(InvalidInput):
            check_type_prefixes([" "])
        with pytest.raises(InvalidInput):
            check_type_prefixes([f"p{n}" for n in range(21)])


LOCAL = parse_allowlist(["127.0.0.0/8", "fd00:1::/64"])


class TestSinkUrls:
    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("ftp://example.com/x", "https"),
            ("https:///x", "no host"),
            ("https://user:pw@example.com/x", "credentials"),
            ("https://user@example.com/x", "credentials"),
            ("https://example.com/x#frag", "fragment"),
            ("https://example.com:99999/x", "not a URL"),
            ("https://example.com/" + "x" * 2100, "longer"),
        ],
    )
    def test_urls_that_cannot_be_sinks(self, url: str, message: str) -> None:
        with pytest.raises(InvalidSink, match=message):
            parse_sink_url(url)

    @pytest.mark.parametrize(
        "address",
        [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",  # cloud metadata
            "0.0.0.0",
            "224.0.0.1",
            "100.64.0.1",  # shared address space (CGNAT)
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "fe80::1%eth0",
        ],
    )
    def test_non_public_addresses_are_refused(self, address: str) -> None:
        with pytest.raises(InvalidSink, match="resolves to"):
            check_sink_addresses(parse_sink_url("https://hooks.example.com/x"), [address], ())

    @pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
    def test_public_addresses_are_accepted_over_https(self, address: str) -> None:
        check_sink_addresses(parse_sink_url("https://hooks.example.com/x"), [address], ())

    def test_plain_http_needs_every_address_allowlisted(self) -> None:
        target = parse_sink_url("http://receiver.local:8080/x")
        check_sink_addresses(target, ["127.0.0.1", "::ffff:127.0.0.2"], LOCAL)
        check_sink_addresses(target, ["fd00:1::5"], LOCAL)
        with pytest.raises(InvalidSink, match="https"):
            check_sink_addresses(parse_sink_url("http://example.com/x"), ["93.184.215.14"], LOCAL)

    def test_one_bad_address_among_good_ones_refuses_the_sink(self) -> None:
        with pytest.raises(InvalidSink, match=r"10\.0\.0\.1"):
            check_sink_addresses(
                parse_sink_url("https://hooks.example.com/x"), ["93.184.215.14", "10.0.0.1"], LOCAL
            )

    @pytest.mark.parametrize(
        "address",
        [
            "2002:7f00:1::",  # 6to4 of 127.0.0.1
            "2002:a00:1::1",  # 6to4 of 10.0.0.1
            "fec0::1",  # site-local
            "192.0.0.8",  # IETF protocol assignments
            "198.18.0.1",  # benchmarking
            "100.64.0.1",  # carrier-grade NAT
            "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
            "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
            "::7f00:1",  # IPv4-compatible 127.0.0.1
            "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
            "::ffff:169.254.169.254",
            "2001:db8::1",
            "240.0.0.1",
        ],
    )
    def test_special_purpose_addresses_and_ipv4_inside_ipv6_are_refused(self, address: str) -> None:
        with pytest.raises(InvalidSink, match="resolves to"):
            check_sink_addresses(parse_sink_url("https://hooks.example.com/x"), [address], ())

    def test_the_allowlist_names_what_may_be_called_all_the_same(self) -> None:
        allowed = parse_allowlist(["198.18.0.0/15", "fec0::/10"])
        target = parse_sink_url("https://hooks.example.com/x")
        check_sink_addresses(target, ["198.18.0.1", "fec0::1", "2002:c612:1::"], allowed)

    def test_a_host_that_does_not_resolve_is_refused(self) -> None:
        with pytest.raises(InvalidSink, match="does not resolve"):
            check_sink_addresses(parse_sink_url("https://nowhere.example/x"), [], ())

    def test_a_bad_allowlist_names_the_entry(self) -> None:
        with pytest.raises(ValueError, match="not-a-net"):
            parse_allowlist(["10.0.0.0/8", "not-a-net"])


class TestRetrySchedule:
    def test_delays_double_up_to_the_cap_with_the_upper_half_jittered(self) -> None:
        schedule = RetrySchedule(max_attempts=10, base_delay_s=1, max_delay_s=6)
        assert [schedule.delay_s(n, 0.0) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 3, 3]
        assert [schedule.delay_s(n, 0.999999) for n in (1, 2, 3, 4)] == pytest.approx([1, 2, 4, 6])

    def test_it_gives_up_after_max_attempts(self) -> None:
        schedule = RetrySchedule(max_attempts=3)
        assert [schedule.gives_up_after(n) for n in (1, 2, 3)] == [False, False, True]

    def test_nonsense_is_refused(self) -> None:
        with pytest.raises(ValueError, match="max_attempts"):
            RetrySchedule(max_attempts=0)


class TestSinkKey:
    def test_spellings_of_one_server_share_one_key(self) -> None:
        keys = {
            sink_key(url)
            for url in (
                "https://hooks.example.com/a",
                "https://HOOKS.example.com:443/b?x=1",
                "https://hooks.example.com./c",
                "HTTPS://hooks.example.com",
            )
        }
        assert keys == {"https://hooks.example.com:443"}

    def test_scheme_and_port_tell_servers_apart(self) -> None:
        assert sink_key("http://hooks.example.com/a") == "http://hooks.example.com:80"
        assert sink_key("https://hooks.example.com:8443/a") == "https://hooks.example.com:8443"
        assert sink_key("http://[::1]:9000/a") == "http://[::1]:9000"
