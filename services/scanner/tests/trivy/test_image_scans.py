"""Real Trivy on real images: what each test image yields, from a registry and from a layout."""

from __future__ import annotations

import json
from pathlib import Path

from mlplane_contracts.events import Severity
from mlplane_scanner.domain.findings import Finding, FindingKind
from mlplane_scanner.trivy import ImageScanResult, TrivyRunner

from ..support import images
from ..support.fixture_types import ScannerTestImages
from ..support.oci_image import write_layout


def _of_kind(result: ImageScanResult, kind: FindingKind) -> list[Finding]:
    return [finding for finding in result.findings if finding.kind is kind]


class TestSecretImage:
    async def test_aws_credentials_in_a_layer_are_a_critical_secret_finding(
        self, trivy_runner: TrivyRunner, test_images: ScannerTestImages
    ) -> None:
        result = await trivy_runner.scan_image(test_images.secret)

        secrets = _of_kind(result, FindingKind.SECRET)
        key_ids = [f for f in secrets if f.id == images.SECRET_RULE_ID]
        assert len(key_ids) == 1
        assert key_ids[0].severity is Severity.CRITICAL
        assert key_ids[0].target == "/root/.aws/credentials"
        assert key_ids[0].layer is not None
        assert key_ids[0].layer.startswith("sha256:")

    async def test_the_raw_report_does_not_repeat_the_secret(
        self, trivy_runner: TrivyRunner, test_images: ScannerTestImages
    ) -> None:
        result = await trivy_runner.scan_image(test_images.secret)

        assert images.FAKE_AWS_KEY_ID.encode() not in result.report
        assert images.FAKE_AWS_SECRET.encode() not in result.report


class TestVulnerableImage:
    async def test_the_advisory_of_the_database_is_reported_with_versions(
        self, trivy_runner: TrivyRunner, test_images: ScannerTestImages
    ) -> None:
        result = await trivy_runner.scan_image(test_images.vulnerable)

        assert result.vulnerabilities_assessed
        assert result.not_assessed_reason is None
        assert _of_kind(result, FindingKind.VULNERABILITY) == [
            Finding(
                kind=FindingKind.VULNERABILITY,
                id=images.ADVISORY_ID,
                severity=Severity.HIGH,
                title=images.ADVISORY_TITLE,
                target="Python",
                package=images.VULNERABLE_PACKAGE,
                installed_version=images.INSTALLED_VERSION,
                fixed_version=images.FIXED_VERSION,
                layer=result.findings[0].layer,
            )
        ]
        assert result.findings[0].layer is not None

    async def test_details_longer_than_a_database_page_reach_the_report(
        self, trivy_runner: TrivyRunner, test_images: ScannerTestImages
    ) -> None:
        assert len(images.ADVISORY_DESCRIPTION) > 4096

        result = await trivy_runner.scan_image(test_images.vulnerable)

        (vulnerability,) = [
            item
            for entry in json.loads(result.report)["Results"]
            for item in entry.get("Vulnerabilities", [])
        ]
        assert vulnerability["Description"] == images.ADVISORY_DESCRIPTION

    async def test_a_fixed_version_of_the_package_is_not_vulnerable(
        self, trivy_runner: TrivyRunner, tmp_path: Path
    ) -> None:
        layout = write_layout(images.vulnerable_image(version=images.FIXED_VERSION), tmp_path)

        result = await trivy_runner.scan_layout(layout)

        assert result.vulnerabilities_assessed
        assert _of_kind(result, FindingKind.VULNERABILITY) == []

    async def test_the_package_license_is_a_finding(
        self, trivy_runner: TrivyRunner, test_images: ScannerTestImages
    ) -> None:
        result = await trivy_runner.scan_image(test_images.vulnerable)

        licenses = _of_kind(result, FindingKind.LICENSE)
        assert [(f.id, f.package) for f in licenses] == [
            (images.PACKAGE_LICENSE, images.VULNERABLE_PACKAGE)
        ]

    async def test_result_names_the_database_and_trivy(
        self, trivy_runner: TrivyRunner, test_images: ScannerTestImages
    ) -> None:
        result = await trivy_runner.scan_image(test_images.vulnerable)

        assert result.db is not None
        assert result.db == await trivy_runner.db_version()
        assert result.db.schema == 2
        assert result.trivy_version == "0.76.0"
        assert result.repo_digests == (test_images.vulnerable,)
        assert json.loads(result.report)["SchemaVersion"] == 2


class TestDebianImage:
    async def test_an_os_package_advisory_is_reported_for_the_installed_binary(
        self, trivy_runner: TrivyRunner, tmp_path: Path
    ) -> None:
        layout = write_layout(images.debian_image(), tmp_path)

        result = await trivy_runner.scan_layout(layout)

        (finding,) = _of_kind(result, FindingKind.VULNERABILITY)
        assert finding.id == images.OS_ADVISORY.vulnerability_id
        assert finding.severity is Severity.MEDIUM
        assert finding.package == images.OS_PACKAGE
        assert finding.installed_version == images.OS_INSTALLED_VERSION
        assert finding.fixed_version == images.OS_FIXED_VERSION
        assert finding.target.endswith("(debian 12.7)")


class TestCleanImage:
    async def test_nothing_is_found(
        self, trivy_runner: TrivyRunner, test_images: ScannerTestImages
    ) -> None:
        result = await trivy_runner.scan_image(test_images.clean)

        assert result.vulnerabilities_assessed
        assert result.findings == ()


class TestLayouts:
    async def test_a_layout_gives_the_same_findings_as_the_registry(
        self, trivy_runner: TrivyRunner, test_images: ScannerTestImages
    ) -> None:
        pairs = [
            (test_images.secret, test_images.secret_layout),
            (test_images.vulnerable, test_images.vulnerable_layout),
            (test_images.clean, test_images.clean_layout),
        ]
        for reference, layout in pairs:
            from_registry = await trivy_runner.scan_image(reference)
            from_layout = await trivy_runner.scan_layout(layout)

            assert from_layout.findings == from_registry.findings
            assert from_layout.target == f"oci-layout:{layout}"
