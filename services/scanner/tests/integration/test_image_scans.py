"""image.built in, real Trivy on real images, image.scanned out: the issue's test list."""

from __future__ import annotations

import json
from datetime import timedelta

from prometheus_client import REGISTRY

from ..conftest import ScannerTestImages
from ..support import images
from .conftest import ScannerUnderTest


def _duration_count(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "mlplane_scanner_scan_duration_seconds_count", {"service": "scanner", "outcome": outcome}
    )
    return value or 0.0


class TestVerdicts:
    async def test_the_secret_image_fails_naming_the_secret_and_keeps_report_and_sbom(
        self, scanner: ScannerUnderTest, test_images: ScannerTestImages
    ) -> None:
        await scanner.deliver(scanner.built(test_images.secret))
        assert await scanner.drain() == 1

        (event,) = await scanner.scanned_events()
        assert event["verdict"] == "failed"
        assert f"secret {images.SECRET_RULE_ID} in /root/.aws/credentials" in event["reasons"]
        assert event["counts"]["critical"] >= 1
        assert event["scanner_version"] == "trivy 0.76.0"
        report = json.loads(await scanner.reports.get(event["report_uri"]))
        assert report["ArtifactName"] == test_images.secret
        sbom = json.loads(await scanner.reports.get(event["sbom_uri"]))
        assert sbom["bomFormat"] == "CycloneDX"

    async def test_the_clean_image_passes_with_no_findings_and_the_scan_is_timed(
        self, scanner: ScannerUnderTest, test_images: ScannerTestImages
    ) -> None:
        before = _duration_count("passed")
        await scanner.deliver(scanner.built(test_images.clean))
        await scanner.drain()

        (event,) = await scanner.scanned_events()
        assert event["verdict"] == "passed"
        assert event["reasons"] == []
        assert set(event["counts"].values()) == {0}
        assert event["vulnerabilities_assessed"] is True
        assert _duration_count("passed") == before + 1

    async def test_the_sbom_downloads_for_its_team_only(
        self, scanner: ScannerUnderTest, test_images: ScannerTestImages
    ) -> None:
        digest = test_images.clean.split("@", 1)[1]
        missing = await scanner.http.get(f"/scans/{digest}/sbom")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        await scanner.deliver(scanner.built(test_images.clean))
        await scanner.drain()
        (event,) = await scanner.scanned_events()

        answer = await scanner.http.get(f"/scans/{digest}/sbom")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/vnd.cyclonedx+json"
        assert answer.headers["content-disposition"].startswith('attachment; filename="sbom-')
        assert answer.content == await scanner.reports.get(event["sbom_uri"])
        assert answer.json()["bomFormat"] == "CycloneDX"
        theirs = await scanner.http.get(
            f"/scans/{digest}/sbom", headers={"X-Mlplane-Team": "another-team"}
        )
        assert theirs.status_code == 404

    async def test_the_vulnerable_image_fails_passes_under_an_exception_and_fails_after_it_expires(
        self, scanner: ScannerUnderTest, test_images: ScannerTestImages
    ) -> None:
        await scanner.deliver(scanner.built(test_images.vulnerable))
        await scanner.drain()
        (failed,) = await scanner.scanned_events()
        assert failed["verdict"] == "failed"
        assert failed["reasons"] == [
            f"{images.ADVISORY_ID} in {images.VULNERABLE_PACKAGE} {images.INSTALLED_VERSION} "
            f"(high, fixed in {images.FIXED_VERSION}) exceeds max severity medium"
        ]
        assert failed["counts"]["high"] == 1

        expires = scanner.clock() + timedelta(days=2)
        answer = await scanner.http.post(
            "/policies/prod/exceptions",
            json={
                "finding_id": images.ADVISORY_ID,
                "owner": "alice@acme.io",
                "reason": "model files come only from our own CI",
                "expires_at": expires.isoformat(),
            },
        )
        assert answer.status_code == 201, answer.text
        assert answer.headers["ETag"] == '"prod-1"'
        # The builder announces the same image again: evaluated under the new policy
        # version, with no second Trivy run.
        await scanner.deliver(scanner.built(test_images.vulnerable))
        assert await scanner.drain() == 0
        passed = (await scanner.scanned_events())[-1]
        assert (passed["verdict"], passed["policy_version"]) == ("passed", 1)
        assert passed["counts"]["high"] == 0

        # It serves in prod; once the exception has expired the watch's next
        # evaluation emits the changed verdict.
        await scanner.deliver(scanner.deployed(test_images.vulnerable))
        watch = scanner.make_watch(scanner.worker._runner)
        await watch.reevaluate_deployed()
        assert len(await scanner.scanned_events()) == 2  # nothing changed yet
        scanner.clock.advance(timedelta(days=2))
        await watch.reevaluate_deployed()
        expired = (await scanner.scanned_events())[-1]
        assert expired["verdict"] == "failed"
        assert images.ADVISORY_ID in expired["reasons"][0]

        answer = await scanner.http.get(f"/scans/{failed['image']['digest']}")
        assert answer.status_code == 200
        (scan,) = answer.json()["scans"]
        assert scan["verdicts"]["prod"]["verdict"] == "failed"
        assert scan["verdicts"]["dev"]["verdict"] == "failed"
        assert [f["id"] for f in scan["findings"] if f["kind"] == "vulnerability"] == [
            images.ADVISORY_ID
        ]

    async def test_the_same_digest_announced_twice_is_scanned_and_stored_once(
        self, scanner: ScannerUnderTest, test_images: ScannerTestImages
    ) -> None:
        first = scanner.built(test_images.clean)
        await scanner.deliver(first)
        await scanner.deliver(first)  # redelivered by the bus
        await scanner.deliver(scanner.built(test_images.clean))  # announced again
        assert await scanner.drain() == 1
        await scanner.deliver(scanner.built(test_images.clean))
        assert await scanner.drain() == 0

        assert len(await scanner.scanned_events()) == 1
        listing = await scanner.http.get("/scans")
        assert len(listing.json()["scans"]) == 1
        client = scanner.reports._bucket.client()
        objects = await client.list_objects_v2(Bucket=scanner.reports.space.bucket)
        keys = sorted(item["Key"].rsplit("/", 1)[1] for item in objects.get("Contents", []))
        assert keys == ["sbom.cdx.json", "trivy.json"]


class TestErrors:
    async def test_an_unreachable_image_gives_verdict_error_with_the_cause_and_work_goes_on(
        self, scanner: ScannerUnderTest, test_images: ScannerTestImages
    ) -> None:
        host = test_images.clean.split("/", 1)[0]
        missing = f"{host}/no-such-repository@sha256:{'0' * 64}"
        await scanner.deliver(scanner.built(missing, model="ghost"))
        await scanner.drain()
        (error,) = await scanner.scanned_events()
        assert error["verdict"] == "error"
        assert error["reasons"][0].startswith("scan failed: trivy failed on " + missing)
        assert error["vulnerabilities_assessed"] is False
        assert json.loads(await scanner.reports.get(error["report_uri"]))["image"] == missing

        await scanner.deliver(scanner.built(test_images.clean))
        await scanner.drain()
        assert (await scanner.scanned_events())[-1]["verdict"] == "passed"

    async def test_a_corrupt_image_gives_verdict_error(
        self, scanner: ScannerUnderTest, corrupt_image: str
    ) -> None:
        await scanner.deliver(scanner.built(corrupt_image, model="broken"))
        await scanner.drain()
        (error,) = await scanner.scanned_events()
        assert error["verdict"] == "error"
        assert "trivy failed" in error["reasons"][0]
