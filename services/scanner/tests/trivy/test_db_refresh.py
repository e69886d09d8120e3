"""The vulnerability database: fetched from its OCI repository, refreshed when due or forced,
and scans that go on without it when it cannot be had."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mlplane_scanner.domain.findings import Finding, FindingKind
from mlplane_scanner.trivy import TrivyFailed
from mlplane_testing.oci_registry import OciRegistryEndpoint, unique_repository

from ..support import images
from ..support.fixture_types import MakeTrivyRunner, ScannerTestImages
from ..support.oci_image import write_layout
from ..support.registry import push_trivy_db
from ..support.trivy_db import GHSA_PIP, Advisory, write_db
from .observer import RecordingObserver

UNREACHABLE_DB = "127.0.0.1:1/mlplane-test/trivy-db"

SECOND_ADVISORY = Advisory(
    source=GHSA_PIP,
    package=images.VULNERABLE_PACKAGE,
    vulnerability_id="GHSA-mlpl-demo-0002",
    severity="CRITICAL",
    title="a later flaw, fixed in 1.4.0",
    vulnerable=("<1.4.0",),
    patched=("1.4.0",),
)


def _ids(findings: Sequence[Finding], kind: FindingKind) -> list[str]:
    return [f.id for f in findings if f.kind is kind]


class TestUnreachableDatabase:
    async def test_secrets_are_still_found_and_vulnerabilities_are_not_assessed(
        self, make_trivy_runner: MakeTrivyRunner, test_images: ScannerTestImages
    ) -> None:
        runner = make_trivy_runner(db_repository=UNREACHABLE_DB)

        result = await runner.scan_image(test_images.secret)

        assert not result.vulnerabilities_assessed
        assert result.db is None
        assert result.not_assessed_reason is not None
        assert UNREACHABLE_DB in result.not_assessed_reason
        assert "connection refused" in result.not_assessed_reason
        assert images.SECRET_RULE_ID in _ids(result.findings, FindingKind.SECRET)

    async def test_the_vulnerable_package_goes_unreported_rather_than_the_scan_failing(
        self, make_trivy_runner: MakeTrivyRunner, test_images: ScannerTestImages
    ) -> None:
        runner = make_trivy_runner(db_repository=UNREACHABLE_DB)

        result = await runner.scan_image(test_images.vulnerable)

        assert not result.vulnerabilities_assessed
        assert _ids(result.findings, FindingKind.VULNERABILITY) == []
        assert _ids(result.findings, FindingKind.LICENSE) == [images.PACKAGE_LICENSE]

    async def test_after_a_failure_the_repository_is_not_asked_again_until_the_retry_time(
        self, make_trivy_runner: MakeTrivyRunner, test_images: ScannerTestImages
    ) -> None:
        observer = RecordingObserver()
        patient = make_trivy_runner(db_repository=UNREACHABLE_DB, observer=observer)
        for _ in range(2):
            result = await patient.scan_image(test_images.clean)
            assert not result.vulnerabilities_assessed
        assert len(observer.downloads()) == 1

        eager_observer = RecordingObserver()
        eager = make_trivy_runner(
            db_repository=UNREACHABLE_DB, observer=eager_observer, db_retry_after_s=0
        )
        for _ in range(2):
            await eager.scan_image(test_images.clean)
        assert len(eager_observer.downloads()) == 2

    async def test_refresh_raises_naming_the_repository(
        self, make_trivy_runner: MakeTrivyRunner
    ) -> None:
        runner = make_trivy_runner(db_repository=UNREACHABLE_DB)

        with pytest.raises(TrivyFailed) as caught:
            await runner.refresh_db()

        assert caught.value.target == f"vulnerability database {UNREACHABLE_DB}"
        assert await runner.db_version() is None

    async def test_without_a_repository_or_a_cached_database_the_reason_says_so(
        self, make_trivy_runner: MakeTrivyRunner, test_images: ScannerTestImages
    ) -> None:
        runner = make_trivy_runner(db_repository=None)

        result = await runner.scan_image(test_images.clean)

        assert not result.vulnerabilities_assessed
        assert result.not_assessed_reason is not None
        assert "no db_repository" in result.not_assessed_reason

    async def test_a_stale_cached_database_is_used_when_the_repository_is_gone(
        self,
        make_trivy_runner: MakeTrivyRunner,
        oci_registry: OciRegistryEndpoint,
        test_images: ScannerTestImages,
        tmp_path: Path,
    ) -> None:
        two_days_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
        db_dir = write_db(tmp_path / "db", [images.ADVISORY], updated_at=two_days_ago)
        repository = await push_trivy_db(oci_registry, unique_repository("stale-db"), db_dir)
        cache = tmp_path / "cache"
        stale = await make_trivy_runner(db_repository=repository, cache_dir=cache).refresh_db()
        assert stale is not None
        assert stale.due(datetime.now(UTC))

        runner = make_trivy_runner(db_repository=UNREACHABLE_DB, cache_dir=cache)
        result = await runner.scan_image(test_images.vulnerable)

        assert result.vulnerabilities_assessed
        assert result.db == stale
        assert _ids(result.findings, FindingKind.VULNERABILITY) == [images.ADVISORY_ID]


class TestRefresh:
    async def test_a_fresh_database_is_not_fetched_again_unless_forced(
        self, make_trivy_runner: MakeTrivyRunner
    ) -> None:
        observer = RecordingObserver()
        runner = make_trivy_runner(observer=observer)

        first = await runner.refresh_db()
        second = await runner.refresh_db()
        assert len(observer.downloads()) == 1
        forced = await runner.refresh_db(force=True)

        assert len(observer.downloads()) == 2
        assert first == second
        assert first is not None
        assert forced is not None
        assert forced.updated_at == first.updated_at
        assert forced.downloaded_at is not None

    async def test_a_new_database_changes_the_version_and_the_findings(
        self,
        make_trivy_runner: MakeTrivyRunner,
        oci_registry: OciRegistryEndpoint,
        tmp_path: Path,
    ) -> None:
        repository = unique_repository("moving-db")
        earlier = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        first_dir = write_db(tmp_path / "first", [images.ADVISORY], updated_at=earlier)
        db_repository = await push_trivy_db(oci_registry, repository, first_dir)
        runner = make_trivy_runner(db_repository=db_repository)
        # 1.3.0 has the first advisory's fix, but not the second's.
        layout = write_layout(
            images.vulnerable_image(version=images.FIXED_VERSION), tmp_path / "image"
        )

        before = await runner.scan_layout(layout)
        later = earlier + timedelta(hours=1)
        second_dir = write_db(
            tmp_path / "second", [images.ADVISORY, SECOND_ADVISORY], updated_at=later
        )
        await push_trivy_db(oci_registry, repository, second_dir)
        refreshed = await runner.refresh_db(force=True)
        after = await runner.scan_layout(layout)

        assert before.db is not None
        assert before.db.updated_at == earlier
        assert _ids(before.findings, FindingKind.VULNERABILITY) == []
        assert refreshed is not None
        assert refreshed.updated_at == later
        assert refreshed.label != before.db.label
        assert after.db == refreshed
        assert _ids(after.findings, FindingKind.VULNERABILITY) == ["GHSA-mlpl-demo-0002"]

    async def test_the_version_is_none_before_any_download(
        self, make_trivy_runner: MakeTrivyRunner
    ) -> None:
        runner = make_trivy_runner()

        assert await runner.db_version() is None
        assert await runner.refresh_db() == await runner.db_version()
        assert await runner.db_version() is not None


class TestTrivyVersion:
    async def test_the_binary_reports_the_pinned_version(
        self, make_trivy_runner: MakeTrivyRunner
    ) -> None:
        assert await make_trivy_runner().trivy_version() == "0.76.0"
