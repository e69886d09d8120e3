"""The verified-key cache's rules: off unless listening, bounded, stale after its TTL,
and never filled from a read that a revocation overtook."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mlplane_gateway.auth.key_cache import VerifiedKeys, api_keys_channel
from mlplane_gateway.auth.principals import Scope
from mlplane_gateway.keys.domain import ApiKey


def api_key(key_id: str) -> ApiKey:
    return ApiKey(
        id=key_id,
        team="risk",
        name="ci",
        scopes=frozenset({Scope.MODELS_READ}),
        created_by="bootstrap",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        expires_at=None,
        revoked_at=None,
        last_used_at=None,
        key_hash=b"h" * 32,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def listening_cache(**options: object) -> tuple[VerifiedKeys, Clock]:
    clock = Clock()
    keys = VerifiedKeys(monotonic=clock, **options)  # type: ignore[arg-type]
    keys.listening(True)
    return keys, clock


class TestVerifiedKeys:
    def test_nothing_is_kept_or_found_while_not_listening(self) -> None:
        keys = VerifiedKeys()
        keys.keep(api_key("aaaaaaaa"), keys.generation)
        assert keys.get("aaaaaaaa") is None
        assert len(keys) == 0

    def test_a_kept_key_is_found_until_its_time_is_up(self) -> None:
        keys, clock = listening_cache(ttl_s=60.0)
        keys.keep(api_key("aaaaaaaa"), keys.generation)
        found = keys.get("aaaaaaaa")
        assert found is not None
        assert found.principal.id == "apikey:aaaaaaaa"
        clock.now += 60.0
        assert keys.get("aaaaaaaa") is None

    def test_a_read_overtaken_by_an_eviction_is_not_kept(self) -> None:
        keys, _ = listening_cache()
        before_read = keys.generation
        keys.evict("aaaaaaaa")  # the revocation's NOTIFY arrives while the row is read
        keys.keep(api_key("aaaaaaaa"), before_read)
        assert keys.get("aaaaaaaa") is None

    def test_losing_the_connection_empties_the_cache_and_voids_reads_in_flight(self) -> None:
        keys, _ = listening_cache()
        keys.keep(api_key("aaaaaaaa"), keys.generation)
        before_read = keys.generation
        keys.listening(False)
        keys.listening(True)
        keys.keep(api_key("bbbbbbbb"), before_read)
        assert len(keys) == 0

    def test_an_empty_notification_forgets_every_key(self) -> None:
        keys, _ = listening_cache()
        keys.keep(api_key("aaaaaaaa"), keys.generation)
        keys.keep(api_key("bbbbbbbb"), keys.generation)
        keys.evict("")
        assert len(keys) == 0

    def test_the_oldest_key_gives_way_past_the_bound(self) -> None:
        keys, _ = listening_cache(max_keys=2)
        for key_id in ("aaaaaaaa", "bbbbbbbb", "cccccccc"):
            keys.keep(api_key(key_id), keys.generation)
        assert keys.get("aaaaaaaa") is None
        assert keys.get("cccccccc") is not None

    def test_bad_bounds_are_refused(self) -> None:
        with pytest.raises(ValueError, match="ttl_s"):
            VerifiedKeys(ttl_s=0)


def test_the_channel_fits_postgresqls_identifier_limit() -> None:
    assert api_keys_channel("gateway") == "mlplane_api_keys_gateway"
    assert len(api_keys_channel("s" * 63)) == 63
