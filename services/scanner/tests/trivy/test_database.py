"""Which vulnerability database a Trivy cache holds (metadata.json)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mlplane_scanner.trivy import DbVersion, cached_db_version, parse_db_metadata

METADATA = {
    "Version": 2,
    "NextUpdate": "2026-11-27T10:56:14.416867123Z",
    "UpdatedAt": "2026-11-26T10:56:14.416867123Z",
    "DownloadedAt": "2026-11-26T10:57:19.149292653Z",
}


class TestParseDbMetadata:
    def test_go_timestamps_with_nanoseconds_are_read_in_utc(self) -> None:
        version = parse_db_metadata(METADATA)

        assert version == DbVersion(
            schema=2,
            updated_at=datetime(2026, 11, 26, 10, 56, 14, 416867, tzinfo=UTC),
            next_update=datetime(2026, 11, 27, 10, 56, 14, 416867, tzinfo=UTC),
            downloaded_at=datetime(2026, 11, 26, 10, 57, 19, 149292, tzinfo=UTC),
        )
        assert version.label == "v2-2026-11-26T10:56:14Z"

    def test_go_zero_time_means_never_downloaded(self) -> None:
        version = parse_db_metadata(METADATA | {"DownloadedAt": "0001-01-01T00:00:00Z"})

        assert version is not None
        assert version.downloaded_at is None

    def test_offsets_other_than_utc_are_converted(self) -> None:
        version = parse_db_metadata(METADATA | {"UpdatedAt": "2026-11-26T12:00:00+02:00"})

        assert version is not None
        assert version.updated_at == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)

    @pytest.mark.parametrize(
        "document",
        [
            None,
            [],
            {},
            METADATA | {"Version": "2"},
            METADATA | {"UpdatedAt": "yesterday"},
            {key: value for key, value in METADATA.items() if key != "NextUpdate"},
        ],
    )
    def test_what_does_not_describe_a_database_is_none(self, document: object) -> None:
        assert parse_db_metadata(document) is None

    def test_a_database_is_due_from_its_next_update_on(self) -> None:
        version = parse_db_metadata(METADATA)
        assert version is not None

        assert not version.due(datetime(2026, 11, 27, 10, 0, tzinfo=UTC))
        assert version.due(version.next_update)


class TestCachedDbVersion:
    def _cache(self, tmp_path: Path, *, metadata: bytes | None, db: bool = True) -> Path:
        (tmp_path / "db").mkdir()
        if db:
            (tmp_path / "db" / "trivy.db").write_bytes(b"\0" * 16)
        if metadata is not None:
            (tmp_path / "db" / "metadata.json").write_bytes(metadata)
        return tmp_path

    def test_the_cached_database_is_read_from_its_metadata(self, tmp_path: Path) -> None:
        cache = self._cache(tmp_path, metadata=json.dumps(METADATA).encode())

        assert cached_db_version(cache) == parse_db_metadata(METADATA)

    def test_an_empty_cache_holds_no_database(self, tmp_path: Path) -> None:
        assert cached_db_version(tmp_path) is None

    def test_metadata_without_the_database_file_is_no_database(self, tmp_path: Path) -> None:
        cache = self._cache(tmp_path, metadata=json.dumps(METADATA).encode(), db=False)

        assert cached_db_version(cache) is None

    def test_unreadable_metadata_is_no_database(self, tmp_path: Path) -> None:
        assert cached_db_version(self._cache(tmp_path, metadata=b"{oops")) is None
