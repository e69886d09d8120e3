"""Reading Trivy's JSON report (schema v2) into findings, on small hand-written reports.

Real reports from real Trivy are read in the integration tests beside this file.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlplane_contracts.events import Severity
from mlplane_scanner.domain.findings import Finding, FindingKind
from mlplane_scanner.trivy import TrivyReportInvalid, parse_report

LAYER = {"Digest": "sha256:aaa", "DiffID": "sha256:bbb"}


def _report(*results: dict[str, Any], **top: Any) -> bytes:
    document: dict[str, Any] = {
        "SchemaVersion": 2,
        "Trivy": {"Version": "0.76.0"},
        "ArtifactName": "registry.example/model@sha256:ccc",
        "ArtifactType": "container_image",
        "Metadata": {"RepoDigests": ["registry.example/model@sha256:ccc"]},
        "Results": list(results),
    }
    document.update(top)
    return json.dumps(document).encode()


class TestParseReport:
    def test_each_kind_of_result_becomes_its_finding(self) -> None:
        raw = _report(
            {
                "Target": "Python",
                "Class": "lang-pkgs",
                "Type": "python-pkg",
                "Vulnerabilities": [
                    {
                        "VulnerabilityID": "CVE-2026-0001",
                        "PkgName": "numpy",
                        "InstalledVersion": "1.0.0",
                        "FixedVersion": "1.0.1",
                        "Severity": "CRITICAL",
                        "Title": "overflow",
                        "Layer": LAYER,
                    }
                ],
            },
            {
                "Target": "/root/.aws/credentials",
                "Class": "secret",
                "Secrets": [
                    {
                        "RuleID": "aws-access-key-id",
                        "Category": "AWS",
                        "Severity": "CRITICAL",
                        "Title": "AWS Access Key ID",
                        "StartLine": 2,
                        "Layer": LAYER,
                    }
                ],
            },
            {
                "Target": "deploy.yaml",
                "Class": "config",
                "Misconfigurations": [
                    {
                        "ID": "KSV-0017",
                        "Title": "Privileged",
                        "Message": "Container 'server' should not be privileged",
                        "Severity": "HIGH",
                        "Status": "FAIL",
                    }
                ],
            },
            {
                "Target": "Python",
                "Class": "license",
                "Licenses": [
                    {
                        "Name": "GPL-3.0",
                        "PkgName": "gplpkg",
                        "Severity": "HIGH",
                        "Category": "restricted",
                    }
                ],
            },
        )

        report = parse_report(raw, target="model")

        assert report.findings == (
            Finding(
                kind=FindingKind.VULNERABILITY,
                id="CVE-2026-0001",
                severity=Severity.CRITICAL,
                title="overflow",
                target="Python",
                package="numpy",
                installed_version="1.0.0",
                fixed_version="1.0.1",
                layer="sha256:aaa",
            ),
            Finding(
                kind=FindingKind.SECRET,
                id="aws-access-key-id",
                severity=Severity.CRITICAL,
                title="AWS Access Key ID (line 2)",
                target="/root/.aws/credentials",
                layer="sha256:aaa",
            ),
            Finding(
                kind=FindingKind.MISCONFIGURATION,
                id="KSV-0017",
                severity=Severity.HIGH,
                title="Privileged: Container 'server' should not be privileged",
                target="deploy.yaml",
            ),
            Finding(
                kind=FindingKind.LICENSE,
                id="GPL-3.0",
                severity=Severity.HIGH,
                title="GPL-3.0 license (restricted)",
                target="Python",
                package="gplpkg",
            ),
        )
        assert report.trivy_version == "0.76.0"
        assert report.artifact_name == "registry.example/model@sha256:ccc"
        assert report.artifact_type == "container_image"
        assert report.repo_digests == ("registry.example/model@sha256:ccc",)

    def test_misconfiguration_checks_that_passed_are_not_findings(self) -> None:
        raw = _report(
            {
                "Target": "deploy.yaml",
                "Misconfigurations": [
                    {"ID": "KSV-0001", "Title": "a", "Severity": "LOW", "Status": "PASS"},
                    {"ID": "KSV-0002", "Title": "b", "Severity": "LOW", "Status": "EXCEPTION"},
                    {"ID": "KSV-0003", "Title": "c", "Severity": "LOW", "Status": "FAIL"},
                ],
            }
        )

        assert [f.id for f in parse_report(raw, target="m").findings] == ["KSV-0003"]

    def test_avd_id_names_a_misconfiguration_that_has_no_id(self) -> None:
        raw = _report(
            {
                "Target": "deploy.yaml",
                "Misconfigurations": [
                    {"AVDID": "AVD-KSV-0017", "Title": "Privileged", "Status": "FAIL"}
                ],
            }
        )

        (finding,) = parse_report(raw, target="m").findings
        assert finding.id == "AVD-KSV-0017"
        assert finding.severity is Severity.UNKNOWN

    def test_the_diff_id_names_the_layer_when_the_digest_is_absent(self) -> None:
        raw = _report(
            {
                "Target": "t",
                "Secrets": [{"RuleID": "r", "Severity": "LOW", "Layer": {"DiffID": "sha256:d"}}],
            }
        )

        (finding,) = parse_report(raw, target="m").findings
        assert finding.layer == "sha256:d"
        assert finding.title == "r"

    def test_an_empty_fixed_version_means_not_fixable(self) -> None:
        raw = _report(
            {
                "Target": "debian 12",
                "Vulnerabilities": [
                    {"VulnerabilityID": "CVE-1", "PkgName": "libc6", "FixedVersion": ""}
                ],
            }
        )

        (finding,) = parse_report(raw, target="m").findings
        assert finding.fixed_version is None
        assert not finding.fixable
        assert finding.title == "CVE-1"

    def test_unknown_or_missing_severities_are_unknown(self) -> None:
        raw = _report(
            {
                "Target": "t",
                "Vulnerabilities": [
                    {"VulnerabilityID": "CVE-1", "Severity": "SEVERE"},
                    {"VulnerabilityID": "CVE-2"},
                    {"VulnerabilityID": "CVE-3", "Severity": "medium"},
                ],
            }
        )

        severities = [f.severity for f in parse_report(raw, target="m").findings]
        assert severities == [Severity.UNKNOWN, Severity.UNKNOWN, Severity.MEDIUM]

    @pytest.mark.parametrize(
        "results",
        [None, [], [None, "x", 3], [{"Vulnerabilities": None, "Secrets": None}], [{}]],
    )
    def test_absent_or_null_parts_give_no_findings(self, results: Any) -> None:
        raw = json.dumps({"SchemaVersion": 2, "Results": results}).encode()

        report = parse_report(raw, target="m")

        assert report.findings == ()
        assert report.trivy_version is None
        assert report.repo_digests == ()

    def test_entries_without_an_id_are_skipped(self) -> None:
        raw = _report(
            {
                "Target": "t",
                "Vulnerabilities": [{"PkgName": "x"}],
                "Secrets": [{"Title": "no rule"}],
                "Misconfigurations": [{"Status": "FAIL"}],
                "Licenses": [{"PkgName": "y"}],
            }
        )

        assert parse_report(raw, target="m").findings == ()

    def test_a_result_without_target_is_named_unknown(self) -> None:
        raw = _report({"Secrets": [{"RuleID": "r", "Severity": "HIGH"}]})

        (finding,) = parse_report(raw, target="m").findings
        assert finding.target == "unknown"


class TestRefusedReports:
    @pytest.mark.parametrize("version", [1, 3, "2", None])
    def test_another_schema_version_is_refused(self, version: Any) -> None:
        raw = json.dumps({"SchemaVersion": version, "Results": []}).encode()

        with pytest.raises(TrivyReportInvalid, match="SchemaVersion") as caught:
            parse_report(raw, target="registry.example/model:1")

        assert caught.value.target == "registry.example/model:1"
        assert not caught.value.retryable

    def test_a_report_without_schema_version_is_refused(self) -> None:
        with pytest.raises(TrivyReportInvalid, match="SchemaVersion None"):
            parse_report(b'{"Results": []}', target="m")

    @pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"text"'])
    def test_what_is_not_a_json_object_is_refused(self, raw: bytes) -> None:
        with pytest.raises(TrivyReportInvalid, match="report on m is not"):
            parse_report(raw, target="m")
