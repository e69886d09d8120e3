"""If-Match evaluation and page cursors: the pure parts of the service and store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mlplane_registry.service import matches
from mlplane_registry.store import Cursor
from mlplane_runtime.errors import InvalidInput


class TestMatches:
    def test_no_precondition_always_matches(self) -> None:
        assert matches(None, "abc")

    @pytest.mark.parametrize("header", ['"abc"', "abc", "*", '"x", "abc"'])
    def test_the_current_tag_or_a_star_matches(self, header: str) -> None:
        assert matches(header, "abc")

    @pytest.mark.parametrize("header", ['"abd"', 'W/"abc"', ""])
    def test_another_or_a_weak_tag_does_not(self, header: str) -> None:
        assert not matches(header, "abc")


class TestCursor:
    def test_a_cursor_round_trips(self) -> None:
        cursor = Cursor(datetime(2026, 11, 26, 7, 0, 0, 123456, tzinfo=UTC), 42)
        assert Cursor.decode(cursor.encode()) == cursor

    @pytest.mark.parametrize("token", ["", "%%", "bm90IGpzb24", "WzEsMiwzXQ"])
    def test_a_foreign_cursor_is_invalid_input(self, token: str) -> None:
        with pytest.raises(InvalidInput):
            Cursor.decode(token)
