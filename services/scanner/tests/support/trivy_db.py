"""A small real Trivy vulnerability database (schema v2), written for tests.

The file is a bbolt database laid out as Trivy reads it:
- `data-source`: advisory bucket name → JSON {ID, Name, URL} (who published it);
- `<ecosystem>::<source name>` (language packages, e.g. `pip::GitHub Security
  Advisory pip`) or `<os> <release>` (e.g. `debian 12`): package → advisory id →
  JSON {PatchedVersions, VulnerableVersions} or {FixedVersion};
- `vulnerability`: advisory id → JSON details (Title, Description, Severity,
  VendorSeverity keyed by data-source ID).
Beside it, `metadata.json` says the schema version and when the next update is due.
As an OCI artifact (how `--db-repository` serves it) the two files are one
tar.gz layer titled `db.tar.gz`.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .bbolt import Tree, write_bbolt
from .oci_image import Blob, Layer, OciImage, sha256_digest, with_manifest

DB_SCHEMA_VERSION = 2
TRIVY_DB_LAYER = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"
TRIVY_DB_CONFIG = "application/vnd.aquasec.trivy.config.v1+json"
TITLE_ANNOTATION = "org.opencontainers.image.title"

# Trivy's severity numbers in VendorSeverity.
_SEVERITY_NUMBER = {"UNKNOWN": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}


@dataclass(frozen=True)
class DataSource:
    """Who publishes an advisory bucket; `bucket` is the bucket's name in the DB."""

    bucket: str
    id: str
    name: str
    url: str


GHSA_PIP = DataSource(
    bucket="pip::GitHub Security Advisory pip",
    id="ghsa",
    name="GitHub Security Advisory pip",
    url="https://github.com/advisories?query=type%3Areviewed+ecosystem%3Apip",
)
DEBIAN_12 = DataSource(
    bucket="debian 12",
    id="debian",
    name="Debian Security Tracker",
    url="https://salsa.debian.org/security-tracker-team/security-tracker",
)


@dataclass(frozen=True)
class Advisory:
    """One vulnerability of one package in one data source.

    Language sources take version ranges (`vulnerable`, `patched`); OS sources
    take `fixed_version` (empty: not fixed yet).
    """

    source: DataSource
    package: str
    vulnerability_id: str
    severity: str
    title: str
    vulnerable: tuple[str, ...] = ()
    patched: tuple[str, ...] = ()
    fixed_version: str | None = None
    description: str = ""

    def entry(self) -> dict[str, object]:
        if self.fixed_version is not None:
            return {"FixedVersion": self.fixed_version}
        return {"PatchedVersions": list(self.patched), "VulnerableVersions": list(self.vulnerable)}


def _json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


def db_tree(advisories: Iterable[Advisory]) -> Tree:
    """The bucket tree of a Trivy DB holding `advisories`."""
    sources: dict[bytes, bytes] = {}
    buckets: dict[bytes, dict[bytes, dict[bytes, bytes]]] = {}
    details: dict[bytes, bytes] = {}
    for advisory in advisories:
        source = advisory.source
        sources[source.bucket.encode()] = _json(
            {"ID": source.id, "Name": source.name, "URL": source.url}
        )
        packages = buckets.setdefault(source.bucket.encode(), {})
        packages.setdefault(advisory.package.encode(), {})[advisory.vulnerability_id.encode()] = (
            _json(advisory.entry())
        )
        details[advisory.vulnerability_id.encode()] = _json(
            {
                "Title": advisory.title,
                "Description": advisory.description or advisory.title,
                "Severity": advisory.severity,
                "VendorSeverity": {source.id: _SEVERITY_NUMBER[advisory.severity]},
            }
        )
    tree: dict[bytes, Tree] = {b"data-source": sources, b"vulnerability": details}
    tree.update(buckets)
    return tree


def metadata(updated_at: datetime) -> dict[str, object]:
    """metadata.json: a next update a day away, so Trivy keeps a cached copy."""
    stamp = updated_at.astimezone(UTC)
    return {
        "Version": DB_SCHEMA_VERSION,
        "NextUpdate": (stamp + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
        "UpdatedAt": stamp.isoformat().replace("+00:00", "Z"),
        "DownloadedAt": "0001-01-01T00:00:00Z",
    }


def write_db(directory: Path, advisories: Iterable[Advisory], *, updated_at: datetime) -> Path:
    """Write trivy.db and metadata.json into `directory` (created); returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    write_bbolt(directory / "trivy.db", db_tree(advisories))
    (directory / "metadata.json").write_bytes(_json(metadata(updated_at)))
    return directory


def db_artifact(directory: Path) -> OciImage:
    """The DB in `directory` as the OCI artifact Trivy downloads with `--db-repository`."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name in ("trivy.db", "metadata.json"):
            tar.add(directory / name, arcname=name)
    uncompressed = raw.getvalue()
    layer = Layer(
        Blob(TRIVY_DB_LAYER, gzip.compress(uncompressed, mtime=0)),
        sha256_digest(uncompressed),
        annotations={TITLE_ANNOTATION: "db.tar.gz"},
    )
    return with_manifest(Blob(TRIVY_DB_CONFIG, b"{}"), (layer,))
