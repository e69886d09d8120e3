"""Images that cannot be scanned give an error naming the image and Trivy's cause."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlplane_scanner.trivy import TrivyFailed, TrivyRunner, parse_report
from mlplane_testing.oci_registry import OciRegistryEndpoint, unique_repository

from ..support import images
from ..support.fixture_types import ScannerTestImages
from ..support.oci_image import write_layout


class TestUnreachableImages:
    async def test_an_image_the_registry_does_not_have(
        self, trivy_runner: TrivyRunner, oci_registry: OciRegistryEndpoint
    ) -> None:
        reference = f"{oci_registry.host}/{unique_repository('missing')}:1"

        with pytest.raises(TrivyFailed) as caught:
            await trivy_runner.scan_image(reference)

        error = caught.value
        assert error.target == reference
        assert error.exit_code == 1
        assert "MANIFEST_UNKNOWN" in error.cause
        assert reference in error.detail

    async def test_a_registry_that_does_not_answer(self, trivy_runner: TrivyRunner) -> None:
        reference = "127.0.0.1:1/mlplane-test/nowhere:1"

        with pytest.raises(TrivyFailed) as caught:
            await trivy_runner.scan_image(reference)

        assert "connection refused" in caught.value.cause
        assert caught.value.problem()["target"] == reference

    async def test_registry_credentials_stay_off_the_command_line_and_out_of_errors(
        self, tmp_path: Path
    ) -> None:
        # A stand-in binary shows what Trivy would have been given.
        fake = tmp_path / "trivy"
        fake.write_text(
            '#!/bin/sh\necho "args: $*" >&2\necho "user: $TRIVY_USERNAME" >&2\nexit 1\n'
        )
        fake.chmod(0o755)
        runner = TrivyRunner(
            fake, cache_dir=tmp_path / "cache", db_repository=None, max_concurrent=1, timeout_s=10
        )

        with pytest.raises(TrivyFailed) as caught:
            await runner.scan_image(
                "r.example/m:1", registry_username="robot", registry_password="s3cr3t-pw"
            )

        log = caught.value.stderr_tail
        assert "user: robot" in log
        (arguments,) = [line for line in log.splitlines() if line.startswith("args: ")]
        assert "r.example/m:1" in arguments
        assert "robot" not in arguments
        assert "s3cr3t-pw" not in log
        assert "s3cr3t-pw" not in repr(caught.value.problem())


class TestCorruptLayouts:
    async def test_an_unreadable_index_is_named(
        self, trivy_runner: TrivyRunner, tmp_path: Path
    ) -> None:
        layout = write_layout(images.clean_image(), tmp_path / "layout")
        (layout / "index.json").write_text("{not json")

        with pytest.raises(TrivyFailed) as caught:
            await trivy_runner.scan_layout(layout)

        assert "invalid index.json" in caught.value.cause
        assert caught.value.target == f"oci-layout:{layout}"

    async def test_a_damaged_layer_is_named(
        self, trivy_runner: TrivyRunner, tmp_path: Path
    ) -> None:
        # A layer no other test has, so no cache of Trivy's knows it already.
        image = images.vulnerable_image(version="0.0.1")
        layout = write_layout(image, tmp_path / "layout")
        layer = image.layers[-1].blob
        path = layout / "blobs" / "sha256" / layer.digest.removeprefix("sha256:")
        path.write_bytes(layer.data[: len(layer.data) // 2])

        with pytest.raises(TrivyFailed) as caught:
            await trivy_runner.scan_layout(layout)

        assert "failed to analyze layer" in caught.value.cause
        assert image.layers[-1].diff_id in caught.value.cause

    async def test_a_missing_layout_is_named(
        self, trivy_runner: TrivyRunner, tmp_path: Path
    ) -> None:
        with pytest.raises(TrivyFailed) as caught:
            await trivy_runner.scan_layout(tmp_path / "absent")

        assert "no such file or directory" in caught.value.cause


class TestReports:
    async def test_real_reports_parse_into_the_findings_of_the_result(
        self, trivy_runner: TrivyRunner, test_images: ScannerTestImages
    ) -> None:
        result = await trivy_runner.scan_image(test_images.secret)

        document = json.loads(result.report)
        assert document["ArtifactName"] == test_images.secret
        assert parse_report(result.report, target="again").findings == result.findings
