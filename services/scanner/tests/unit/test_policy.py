"""Policies as versioned data: defaults per environment, edits making new versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mlplane_contracts.events import Environment, Severity
from mlplane_scanner.domain.errors import ExceptionNotFound, InvalidPolicy
from mlplane_scanner.domain.exceptions import FindingException
from mlplane_scanner.domain.policy import Policy, default_policy
from mlplane_scanner.domain.vex import parse_openvex

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def exception(finding_id: str = "CVE-1", package: str | None = None) -> FindingException:
    return FindingException(finding_id, "bob", "false positive", NOW + timedelta(days=3), package)


class TestDefaults:
    @pytest.mark.parametrize(
        ("environment", "blocks"),
        [(Environment.DEV, False), (Environment.STAGING, False), (Environment.PROD, True)],
    )
    def test_only_prod_blocks_an_unassessed_scan_by_default(
        self, environment: Environment, blocks: bool
    ) -> None:
        policy = default_policy("risk", environment)
        assert policy.block_when_vulnerabilities_not_assessed is blocks
        assert policy.version == 0
        assert policy.secrets_fail


class TestEdits:
    def test_each_edit_makes_the_next_version_and_records_who(self) -> None:
        first = default_policy("risk", Environment.PROD).with_settings(
            max_severity=Severity.HIGH,
            ignore_unfixed=True,
            license_deny=["AGPL-3.0"],
            block_when_vulnerabilities_not_assessed=True,
            by="user:alice",
            at=NOW,
        )
        second = first.with_exception(exception(), by="user:bob", at=NOW)
        assert (first.version, second.version) == (1, 2)
        assert second.updated_by == "user:bob"
        assert second.max_severity is Severity.HIGH

    def test_adding_an_exception_for_the_same_finding_and_package_replaces_it(self) -> None:
        policy = default_policy("risk", Environment.DEV)
        policy = policy.with_exception(exception(), by="a", at=NOW)
        policy = policy.with_exception(exception(), by="a", at=NOW)
        policy = policy.with_exception(exception(package="xz"), by="a", at=NOW)
        assert [e.key for e in policy.exceptions] == [("CVE-1", None), ("CVE-1", "xz")]

    def test_removing_an_unknown_exception_is_not_found(self) -> None:
        with pytest.raises(ExceptionNotFound):
            default_policy("risk", Environment.DEV).without_exception("CVE-9", None, by="a", at=NOW)

    def test_uploading_a_vex_document_again_replaces_its_statements(self) -> None:
        document = {
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": "doc-1",
            "statements": [
                {
                    "vulnerability": {"name": "CVE-1"},
                    "products": ["sha256:" + "1" * 64],
                    "status": "not_affected",
                    "justification": "component_not_present",
                }
            ],
        }
        policy = default_policy("risk", Environment.PROD)
        policy = policy.with_vex(parse_openvex(document), by="a", at=NOW)
        policy = policy.with_vex(parse_openvex(document), by="a", at=NOW)
        assert len(policy.vex) == 1

    def test_the_stored_form_round_trips(self) -> None:
        policy = (
            default_policy("risk", Environment.STAGING)
            .with_settings(
                max_severity=Severity.LOW,
                ignore_unfixed=True,
                license_deny=["GPL-3.0"],
                block_when_vulnerabilities_not_assessed=True,
                by="a",
                at=NOW,
            )
            .with_exception(exception(package="xz"), by="a", at=NOW)
        )
        restored = Policy.from_json(
            "risk", Environment.STAGING, policy.version, policy.as_json(), updated_by="a"
        )
        assert restored == policy


class TestValidation:
    @pytest.mark.parametrize("field", ["finding_id", "owner", "reason"])
    def test_an_exception_needs_every_field(self, field: str) -> None:
        values = {"finding_id": "CVE-1", "owner": "bob", "reason": "why"}
        values[field] = "  "
        with pytest.raises(InvalidPolicy) as caught:
            FindingException(expires_at=NOW, **values)
        assert caught.value.extensions["field"] == field

    def test_an_exception_expiry_needs_a_time_zone(self) -> None:
        with pytest.raises(InvalidPolicy, match="time zone"):
            FindingException("CVE-1", "bob", "why", datetime(2027, 1, 1))
