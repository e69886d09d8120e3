"""CycloneDX SBOMs of real images by real Trivy."""

from __future__ import annotations

import json

from mlplane_scanner.trivy import LayoutImage, RegistryImage, TrivyRunner

from ..support import images
from ..support.fixture_types import ScannerTestImages


def _components(sbom: bytes) -> dict[str, dict[str, object]]:
    document = json.loads(sbom)
    assert document["bomFormat"] == "CycloneDX"
    assert document["specVersion"].startswith("1.")
    return {str(c["name"]): c for c in document.get("components", [])}


class TestSbom:
    async def test_the_vulnerable_package_is_listed_with_version_and_purl(
        self, trivy_runner: TrivyRunner, test_images: ScannerTestImages
    ) -> None:
        sbom = await trivy_runner.sbom(RegistryImage(test_images.vulnerable))

        component = _components(sbom)[images.VULNERABLE_PACKAGE]
        assert component["version"] == images.INSTALLED_VERSION
        assert component["purl"] == (
            f"pkg:pypi/{images.VULNERABLE_PACKAGE}@{images.INSTALLED_VERSION}"
        )
        licenses = json.dumps(component.get("licenses"))
        assert images.PACKAGE_LICENSE in licenses

    async def test_the_sbom_describes_the_image_by_digest(
        self, trivy_runner: TrivyRunner, test_images: ScannerTestImages
    ) -> None:
        sbom = await trivy_runner.sbom(RegistryImage(test_images.vulnerable))

        subject = json.loads(sbom)["metadata"]["component"]
        assert subject["type"] == "container"
        digest = test_images.vulnerable.split("@", 1)[1]
        assert digest in subject["purl"]

    async def test_a_layout_has_an_sbom_and_a_clean_image_lists_no_package(
        self, trivy_runner: TrivyRunner, test_images: ScannerTestImages
    ) -> None:
        vulnerable = await trivy_runner.sbom(LayoutImage(test_images.vulnerable_layout))
        clean = await trivy_runner.sbom(LayoutImage(test_images.clean_layout))

        assert images.VULNERABLE_PACKAGE in _components(vulnerable)
        assert _components(clean) == {}
