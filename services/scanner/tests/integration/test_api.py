"""The scanner's HTTP API: policies as versioned data, exceptions, VEX, manifest scans."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from .conftest import ScannerUnderTest


class TestPolicies:
    async def test_a_team_without_a_policy_reads_the_defaults_at_version_zero(
        self, scanner: ScannerUnderTest
    ) -> None:
        answer = await scanner.http.get("/policies/prod")
        assert answer.status_code == 200
        assert answer.headers["ETag"] == '"prod-0"'
        body = answer.json()
        assert (body["version"], body["max_severity"], body["secrets_fail"]) == (0, "medium", True)
        assert body["block_when_vulnerabilities_not_assessed"] is True
        dev = (await scanner.http.get("/policies/dev")).json()
        assert dev["block_when_vulnerabilities_not_assessed"] is False

    async def test_each_put_is_a_new_version_and_a_stale_if_match_is_refused(
        self, scanner: ScannerUnderTest
    ) -> None:
        body = {
            "max_severity": "high",
            "ignore_unfixed": True,
            "license_deny": ["AGPL-3.0"],
            "block_when_vulnerabilities_not_assessed": False,
        }
        first = await scanner.http.put(
            "/policies/staging", json=body, headers={"If-Match": '"staging-0"'}
        )
        assert first.status_code == 200, first.text
        assert first.json()["version"] == 1
        assert first.json()["updated_by"] == "user:alice@acme.io"
        stale = await scanner.http.put(
            "/policies/staging", json=body, headers={"If-Match": '"staging-0"'}
        )
        assert stale.status_code == 412
        assert stale.headers["content-type"] == "application/problem+json"
        second = await scanner.http.put("/policies/staging", json=body)
        assert second.json()["version"] == 2

    async def test_a_bad_policy_is_a_422_naming_the_field(self, scanner: ScannerUnderTest) -> None:
        answer = await scanner.http.put(
            "/policies/prod",
            json={"max_severity": "apocalyptic", "block_when_vulnerabilities_not_assessed": True},
        )
        assert answer.status_code == 422
        assert answer.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in answer.json()["errors"]] == ["body.max_severity"]

    async def test_an_exception_needs_owner_reason_and_a_zoned_expiry(
        self, scanner: ScannerUnderTest
    ) -> None:
        answer = await scanner.http.post(
            "/policies/prod/exceptions",
            json={"finding_id": "CVE-2024-3094", "expires_at": "2030-01-01T00:00:00"},
        )
        assert answer.status_code == 422
        fields = {e["field"] for e in answer.json()["errors"]}
        assert fields == {"body.owner", "body.reason", "body.expires_at"}

    async def test_an_exception_can_be_removed_and_removing_it_again_is_404(
        self, scanner: ScannerUnderTest
    ) -> None:
        expires = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        added = await scanner.http.post(
            "/policies/dev/exceptions",
            json={
                "finding_id": "KSV017",
                "owner": "bob",
                "reason": "a GPU driver",
                "expires_at": expires,
            },
        )
        assert added.status_code == 201
        assert added.json()["exceptions"][0]["active"] is True
        removed = await scanner.http.delete("/policies/dev/exceptions/KSV017")
        assert removed.status_code == 200
        assert removed.json()["exceptions"] == []
        assert removed.json()["version"] == 2
        again = await scanner.http.delete("/policies/dev/exceptions/KSV017")
        assert again.status_code == 404

    async def test_a_vex_document_is_accepted_and_a_malformed_one_refused(
        self, scanner: ScannerUnderTest
    ) -> None:
        document = {
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": "https://acme.io/vex/1",
            "statements": [
                {
                    "vulnerability": {"name": "CVE-2024-3094"},
                    "products": [{"@id": "sha256:" + "b" * 64}],
                    "status": "not_affected",
                    "justification": "component_not_present",
                }
            ],
        }
        accepted = await scanner.http.post("/policies/prod/vex", content=json.dumps(document))
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["vex"][0]["vulnerability"] == "CVE-2024-3094"
        document["statements"][0]["status"] = "perhaps"  # type: ignore[index]
        refused = await scanner.http.post("/policies/prod/vex", content=json.dumps(document))
        assert refused.status_code == 422
        assert refused.json()["field"] == "statements[0].status"

    async def test_an_unknown_digest_is_404_and_a_malformed_one_422(
        self, scanner: ScannerUnderTest
    ) -> None:
        assert (await scanner.http.get("/scans/sha256:" + "c" * 64)).status_code == 404
        assert (await scanner.http.get("/scans/latest")).status_code == 422


class TestManifestInput:
    async def test_input_that_is_not_manifests_is_a_422_problem(
        self, scanner: ScannerUnderTest
    ) -> None:
        for body, content_type, field in [
            ("just some words\n", "application/yaml", "body[0]"),
            ('{"kind": "Deployment"}', "application/json", "body[0].apiVersion"),
            ("{not json", "application/json", "body"),
            ("", "application/yaml", "body"),
        ]:
            answer = await scanner.http.post(
                "/manifests/scan", content=body, headers={"Content-Type": content_type}
            )
            assert answer.status_code == 422, body
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["field"] == field
