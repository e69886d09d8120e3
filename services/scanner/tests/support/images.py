"""The scanner's test images and the advisories of the test database, side by side.

- the secret image carries AWS credentials in a layer (Trivy's rule `aws-access-key-id`);
- the vulnerable image carries a Python package that the test database's advisory
  names: `mlplane-demo-vuln` 1.2.0, fixed in 1.3.0;
- the Debian image carries a dpkg database whose `libmlplane1` 1.0-1 (source package
  `mlplane-demo`) the test database's Debian 12 advisory names, fixed in 1.0-2;
- the clean image carries a file that is neither.
Each is built in memory (`oci_image.py`), so the same bytes give the same digest.
"""

from __future__ import annotations

from datetime import UTC, datetime

from .oci_image import OciImage, build_image
from .trivy_db import DEBIAN_12, GHSA_PIP, Advisory

SECRET_RULE_ID = "aws-access-key-id"
# Split so no secret scanner flags this repository for a made-up key.
FAKE_AWS_KEY_ID = "AKIA" + "Z7QWERTYUIOPASDF"
FAKE_AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYzQ2w8Lm3Np"  # 40 characters, as AWS

VULNERABLE_PACKAGE = "mlplane-demo-vuln"
INSTALLED_VERSION = "1.2.0"
FIXED_VERSION = "1.3.0"
ADVISORY_ID = "GHSA-mlpl-demo-0001"
ADVISORY_TITLE = "mlplane-demo-vuln deserialises untrusted model files"
PACKAGE_LICENSE = "MIT"
# Longer than a bbolt page: Trivy must follow the value into overflow pages.
ADVISORY_DESCRIPTION = " ".join(
    f"Loading a crafted model file runs its code (detail {n})." for n in range(150)
)

ADVISORY = Advisory(
    source=GHSA_PIP,
    package=VULNERABLE_PACKAGE,
    vulnerability_id=ADVISORY_ID,
    severity="HIGH",
    title=ADVISORY_TITLE,
    vulnerable=(f"<{FIXED_VERSION}",),
    patched=(FIXED_VERSION,),
    description=ADVISORY_DESCRIPTION,
)

OS_PACKAGE = "libmlplane1"
OS_SOURCE_PACKAGE = "mlplane-demo"
OS_INSTALLED_VERSION = "1.0-1"
OS_FIXED_VERSION = "1.0-2"
OS_ADVISORY = Advisory(
    source=DEBIAN_12,
    # Debian's tracker names source packages; Trivy maps installed binaries to them.
    package=OS_SOURCE_PACKAGE,
    vulnerability_id="CVE-2026-99999",
    severity="MEDIUM",
    title="mlplane-demo reads past a buffer",
    fixed_version=OS_FIXED_VERSION,
)

_SITE_PACKAGES = "usr/local/lib/python3.11/site-packages"


def python_package(name: str, version: str, license_name: str = PACKAGE_LICENSE) -> dict[str, str]:
    """The files by which Trivy finds an installed Python package (its dist-info METADATA)."""
    directory = f"{_SITE_PACKAGES}/{name.replace('-', '_')}-{version}.dist-info"
    metadata = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nLicense: {license_name}\n\n"
    )
    return {f"{directory}/METADATA": metadata}


def secret_image() -> OciImage:
    credentials = (
        "[default]\n"
        f"aws_access_key_id = {FAKE_AWS_KEY_ID}\n"
        f"aws_secret_access_key = {FAKE_AWS_SECRET}\n"
    )
    return build_image([{"app/model.txt": "weights\n"}, {"root/.aws/credentials": credentials}])


def vulnerable_image(version: str = INSTALLED_VERSION) -> OciImage:
    return build_image(
        [{"app/model.txt": "weights\n"}, python_package(VULNERABLE_PACKAGE, version)]
    )


def debian_image() -> OciImage:
    os_release = (
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
        'VERSION_ID="12"\nVERSION="12 (bookworm)"\nID=debian\n'
    )
    status = (
        f"Package: {OS_PACKAGE}\nStatus: install ok installed\nPriority: optional\n"
        "Section: libs\nInstalled-Size: 100\nMaintainer: mlplane <dev@mlplane.io>\n"
        f"Architecture: amd64\nSource: {OS_SOURCE_PACKAGE}\nVersion: {OS_INSTALLED_VERSION}\n"
        "Description: a library of the test images\n\n"
    )
    return build_image(
        [
            {
                "etc/os-release": os_release,
                "etc/debian_version": "12.7\n",
                "var/lib/dpkg/status": status,
            }
        ]
    )


def clean_image() -> OciImage:
    return build_image([{"app/model.txt": "weights\n", "app/README": "a model, nothing else\n"}])


def filler_advisories(count: int) -> list[Advisory]:
    """Advisories of packages no test image has: enough of them spill buckets over many pages."""
    return [
        Advisory(
            source=GHSA_PIP,
            package=f"filler-package-{index:05d}",
            vulnerability_id=f"GHSA-fill-{index:04d}-0000",
            severity="LOW",
            title=f"filler advisory {index}",
            vulnerable=("<1.0.0",),
            patched=("1.0.0",),
        )
        for index in range(count)
    ]


def database_advisories(*, fillers: int = 0) -> list[Advisory]:
    return [ADVISORY, OS_ADVISORY, *filler_advisories(fillers)]


def db_updated_at() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
