"""The policy engine: verdicts, reasons, counts, exceptions, expiry, VEX, unassessed scans."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from mlplane_contracts.events import Environment, Severity
from mlplane_scanner.domain.evaluation import MAX_REASONS, Outcome, evaluate
from mlplane_scanner.domain.exceptions import FindingException
from mlplane_scanner.domain.findings import SEVERITY_ORDER, Finding, FindingKind
from mlplane_scanner.domain.policy import Policy, default_policy
from mlplane_scanner.domain.vex import parse_openvex

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32

XZ = Finding(
    FindingKind.VULNERABILITY,
    "CVE-2024-3094",
    Severity.CRITICAL,
    "xz backdoor",
    "debian 12 (os)",
    package="xz-utils",
    installed_version="5.6.0",
    fixed_version="5.6.1",
)
UNFIXED = Finding(
    FindingKind.VULNERABILITY,
    "CVE-2023-0001",
    Severity.HIGH,
    "no fix",
    "debian 12 (os)",
    package="libfoo",
    installed_version="1.0",
)
LOW = Finding(FindingKind.VULNERABILITY, "CVE-2023-0002", Severity.LOW, "minor", "t", package="bar")
SECRET = Finding(
    FindingKind.SECRET, "aws-access-key-id", Severity.CRITICAL, "AWS key", "/app/creds.txt"
)
GPL = Finding(FindingKind.LICENSE, "GPL-3.0", Severity.HIGH, "GPL", "t", package="foo")
PRIVILEGED = Finding(
    FindingKind.MISCONFIGURATION,
    "KSV017",
    Severity.HIGH,
    "Privileged container",
    "deployment.yaml",
)


def prod(**changes: Any) -> Policy:
    return replace(default_policy("risk", Environment.PROD), **changes)


def exception_for(
    finding_id: str, expires: datetime, package: str | None = None
) -> FindingException:
    return FindingException(
        finding_id, "alice@acme.io", "patched upstream next week", expires, package
    )


class TestEvaluate:
    def test_a_clean_scan_passes_with_no_reasons_and_zero_counts(self) -> None:
        result = evaluate([], prod(), now=NOW, vulnerabilities_assessed=True)
        assert result.verdict is Outcome.PASSED
        assert result.reasons == ()
        assert set(result.counts.values()) == {0}

    def test_a_vulnerability_above_the_limit_fails_with_an_actionable_reason(self) -> None:
        result = evaluate(
            [XZ], prod(max_severity=Severity.HIGH), now=NOW, vulnerabilities_assessed=True
        )
        assert result.verdict is Outcome.FAILED
        assert result.reasons == (
            "CVE-2024-3094 in xz-utils 5.6.0 (critical, fixed in 5.6.1) exceeds max severity high",
        )
        assert result.counts[Severity.CRITICAL] == 1

    def test_a_vulnerability_at_the_limit_passes_but_is_counted(self) -> None:
        result = evaluate(
            [UNFIXED], prod(max_severity=Severity.HIGH), now=NOW, vulnerabilities_assessed=True
        )
        assert result.verdict is Outcome.PASSED
        assert result.counts[Severity.HIGH] == 1

    def test_a_secret_fails_even_when_every_severity_is_allowed_and_an_exception_names_it(
        self,
    ) -> None:
        policy = prod(
            max_severity=Severity.CRITICAL,
            exceptions=(exception_for("aws-access-key-id", NOW + timedelta(days=1)),),
        )
        result = evaluate([SECRET], policy, now=NOW, vulnerabilities_assessed=True)
        assert result.verdict is Outcome.FAILED
        assert result.reasons == ("secret aws-access-key-id in /app/creds.txt",)
        assert result.suppressed == ()

    def test_secrets_come_first_in_the_reasons(self) -> None:
        result = evaluate([XZ, SECRET], prod(), now=NOW, vulnerabilities_assessed=True)
        assert result.reasons[0].startswith("secret ")

    def test_a_denied_license_fails_and_an_allowed_one_is_not_counted(self) -> None:
        denied = evaluate(
            [GPL], prod(license_deny=frozenset({"gpl-3.0"})), now=NOW, vulnerabilities_assessed=True
        )
        assert denied.verdict is Outcome.FAILED
        assert denied.reasons == ("license GPL-3.0 denied (package foo)",)
        allowed = evaluate([GPL], prod(), now=NOW, vulnerabilities_assessed=True)
        assert allowed.verdict is Outcome.PASSED
        assert allowed.counts[Severity.HIGH] == 0

    def test_a_misconfiguration_above_the_limit_names_its_check_and_file(self) -> None:
        result = evaluate([PRIVILEGED], prod(), now=NOW, vulnerabilities_assessed=True)
        assert result.verdict is Outcome.FAILED
        assert result.reasons == (
            "misconfiguration KSV017 in deployment.yaml (high): Privileged container "
            "exceeds max severity medium",
        )

    def test_unfixed_vulnerabilities_are_set_aside_only_when_the_policy_says_so(self) -> None:
        counted = evaluate([UNFIXED], prod(), now=NOW, vulnerabilities_assessed=True)
        assert counted.verdict is Outcome.FAILED
        assert "(high, no fix yet)" in counted.reasons[0]
        ignored = evaluate(
            [UNFIXED], prod(ignore_unfixed=True), now=NOW, vulnerabilities_assessed=True
        )
        assert ignored.verdict is Outcome.PASSED
        assert [s.finding for s in ignored.suppressed] == [UNFIXED]
        assert "no fix available" in ignored.suppressed[0].why

    def test_repeated_findings_count_once(self) -> None:
        result = evaluate([LOW, LOW], prod(), now=NOW, vulnerabilities_assessed=True)
        assert result.counts[Severity.LOW] == 1

    def test_reasons_are_bounded_and_the_rest_counted(self) -> None:
        many = [
            Finding(FindingKind.VULNERABILITY, f"CVE-2024-{i:05d}", Severity.HIGH, "x", "t")
            for i in range(MAX_REASONS + 7)
        ]
        result = evaluate(many, prod(), now=NOW, vulnerabilities_assessed=True)
        assert len(result.reasons) == MAX_REASONS + 1
        assert result.reasons[-1] == "and 7 more finding(s) beyond the policy"
        assert result.counts[Severity.HIGH] == MAX_REASONS + 7


class TestExceptions:
    def test_an_active_exception_turns_the_failure_into_a_pass_and_says_who_accepted_it(
        self,
    ) -> None:
        policy = prod(exceptions=(exception_for("CVE-2024-3094", NOW + timedelta(days=7)),))
        result = evaluate([XZ], policy, now=NOW, vulnerabilities_assessed=True)
        assert result.verdict is Outcome.PASSED
        assert result.counts[Severity.CRITICAL] == 0
        (suppressed,) = result.suppressed
        assert "alice@acme.io" in suppressed.why
        assert "patched upstream next week" in suppressed.why

    def test_an_expired_exception_stops_applying(self) -> None:
        expires = NOW + timedelta(hours=1)
        policy = prod(exceptions=(exception_for("CVE-2024-3094", expires),))
        before = evaluate(
            [XZ], policy, now=expires - timedelta(seconds=1), vulnerabilities_assessed=True
        )
        at = evaluate([XZ], policy, now=expires, vulnerabilities_assessed=True)
        assert before.verdict is Outcome.PASSED
        assert at.verdict is Outcome.FAILED

    def test_an_exception_scoped_to_a_package_covers_only_that_package(self) -> None:
        policy = prod(
            exceptions=(exception_for("CVE-2024-3094", NOW + timedelta(days=1), "other"),)
        )
        assert (
            evaluate([XZ], policy, now=NOW, vulnerabilities_assessed=True).verdict is Outcome.FAILED
        )

    def test_an_exception_covers_a_misconfiguration_check(self) -> None:
        policy = prod(exceptions=(exception_for("KSV017", NOW + timedelta(days=1)),))
        assert evaluate([PRIVILEGED], policy, now=NOW, vulnerabilities_assessed=True).passed


def vex_document(
    product: str, *, status: str = "not_affected", subcomponent: str | None = None
) -> dict[str, object]:
    product_entry: dict[str, object] = {"@id": product}
    if subcomponent is not None:
        product_entry["subcomponents"] = [{"@id": subcomponent}]
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://acme.io/vex/1",
        "author": "security@acme.io",
        "timestamp": "2026-11-01T00:00:00Z",
        "version": 1,
        "statements": [
            {
                "vulnerability": {"name": "CVE-2024-3094"},
                "products": [product_entry],
                "status": status,
                "justification": "vulnerable_code_not_in_execute_path",
            }
        ],
    }


class TestVex:
    def test_not_affected_for_this_image_by_purl_suppresses_the_vulnerability(self) -> None:
        purl = f"pkg:oci/fraud@{DIGEST.replace(':', '%3A')}?repository_url=harbor.acme.io/ml/fraud"
        policy = prod(vex=parse_openvex(vex_document(purl)).statements)
        result = evaluate([XZ], policy, now=NOW, vulnerabilities_assessed=True, image_digest=DIGEST)
        assert result.verdict is Outcome.PASSED
        assert "not_affected (vulnerable_code_not_in_execute_path)" in result.suppressed[0].why

    def test_a_statement_about_another_image_does_not_apply(self) -> None:
        other = "sha256:" + "cd" * 32
        policy = prod(vex=parse_openvex(vex_document(other)).statements)
        result = evaluate([XZ], policy, now=NOW, vulnerabilities_assessed=True, image_digest=DIGEST)
        assert result.verdict is Outcome.FAILED

    def test_an_affected_statement_does_not_suppress(self) -> None:
        document = vex_document(DIGEST, status="affected")
        policy = prod(vex=parse_openvex(document).statements)
        result = evaluate([XZ], policy, now=NOW, vulnerabilities_assessed=True, image_digest=DIGEST)
        assert result.verdict is Outcome.FAILED

    def test_subcomponents_narrow_the_statement_to_a_package(self) -> None:
        matching = prod(
            vex=parse_openvex(
                vex_document(DIGEST, subcomponent="pkg:deb/debian/xz-utils@5.6.0")
            ).statements
        )
        other = prod(
            vex=parse_openvex(vex_document(DIGEST, subcomponent="pkg:deb/debian/zlib")).statements
        )
        assert evaluate(
            [XZ], matching, now=NOW, vulnerabilities_assessed=True, image_digest=DIGEST
        ).passed
        assert not evaluate(
            [XZ], other, now=NOW, vulnerabilities_assessed=True, image_digest=DIGEST
        ).passed


class TestNotAssessed:
    def test_the_default_prod_policy_blocks_and_says_why(self) -> None:
        result = evaluate(
            [], default_policy("risk", Environment.PROD), now=NOW, vulnerabilities_assessed=False
        )
        assert result.verdict is Outcome.FAILED
        assert result.reasons == (
            "vulnerabilities not assessed: no vulnerability database reachable "
            "(policy blocks prod)",
        )

    def test_the_default_dev_and_staging_policies_allow_it_and_still_say_so(self) -> None:
        for environment in (Environment.DEV, Environment.STAGING):
            result = evaluate(
                [], default_policy("risk", environment), now=NOW, vulnerabilities_assessed=False
            )
            assert result.verdict is Outcome.PASSED
            assert result.reasons == (
                "vulnerabilities not assessed: no vulnerability database reachable "
                f"(policy allows {environment.value})",
            )


# -- properties ------------------------------------------------------------------------

findings = st.builds(
    Finding,
    kind=st.sampled_from(list(FindingKind)),
    id=st.sampled_from(["CVE-1", "CVE-2", "KSV017", "GPL-3.0", "aws-access-key-id"]),
    severity=st.sampled_from(SEVERITY_ORDER),
    title=st.just("t"),
    target=st.sampled_from(["a", "b"]),
    package=st.sampled_from([None, "p", "q"]),
    installed_version=st.sampled_from([None, "1.0"]),
    fixed_version=st.sampled_from([None, "", "1.1"]),
)
policies = st.builds(
    prod,
    max_severity=st.sampled_from(SEVERITY_ORDER),
    ignore_unfixed=st.booleans(),
    license_deny=st.frozensets(st.sampled_from(["GPL-3.0", "MIT"])),
    block_when_vulnerabilities_not_assessed=st.booleans(),
)
exceptions = st.builds(
    FindingException,
    finding_id=st.sampled_from(["CVE-1", "CVE-2", "KSV017", "GPL-3.0", "aws-access-key-id"]),
    owner=st.just("alice"),
    reason=st.just("accepted"),
    expires_at=st.sampled_from([NOW - timedelta(days=1), NOW + timedelta(days=1)]),
    package=st.sampled_from([None, "p"]),
)


@given(st.lists(findings, max_size=8), policies, exceptions, st.booleans())
def test_adding_an_exception_never_turns_a_pass_into_a_failure(
    scan: list[Finding], policy: Policy, exception: FindingException, assessed: bool
) -> None:
    before = evaluate(scan, policy, now=NOW, vulnerabilities_assessed=assessed)
    after = evaluate(
        scan,
        replace(policy, exceptions=(exception,)),
        now=NOW,
        vulnerabilities_assessed=assessed,
    )
    if before.passed:
        assert after.passed
    assert sum(after.counts.values()) <= sum(before.counts.values())


@given(st.lists(findings, max_size=8), policies)
def test_a_scan_with_a_secret_never_passes(scan: list[Finding], policy: Policy) -> None:
    secret = Finding(FindingKind.SECRET, "github-pat", Severity.LOW, "t", "/x")
    assert not evaluate([*scan, secret], policy, now=NOW, vulnerabilities_assessed=True).passed


@given(st.lists(findings, max_size=8), policies)
def test_verdict_fails_exactly_when_there_are_reasons_for_it(
    scan: list[Finding], policy: Policy
) -> None:
    result = evaluate(scan, policy, now=NOW, vulnerabilities_assessed=True)
    assert result.passed == (not result.blocking)
    assert len(result.reasons) == min(len(result.blocking), MAX_REASONS) + (
        1 if len(result.blocking) > MAX_REASONS else 0
    )
