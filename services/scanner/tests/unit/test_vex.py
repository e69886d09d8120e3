"""OpenVEX parsing: what is accepted, what is refused and how the refusal names the field."""

from __future__ import annotations

from typing import Any

import pytest
from mlplane_scanner.domain.errors import InvalidVex
from mlplane_scanner.domain.vex import VexJustification, VexStatus, parse_openvex, product_digest

DIGEST = "sha256:" + "0f" * 32


def document(**statement: Any) -> dict[str, Any]:
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://acme.io/vex/2026-11",
        "author": "security@acme.io",
        "timestamp": "2026-11-01T00:00:00Z",
        "version": 1,
        "statements": [
            {
                "vulnerability": {"name": "CVE-2024-3094", "aliases": ["GHSA-xxxx"]},
                "products": [{"@id": DIGEST}],
                "status": "not_affected",
                "justification": "component_not_present",
                **statement,
            }
        ],
    }


class TestParse:
    def test_a_valid_document_gives_its_statements(self) -> None:
        (statement,) = parse_openvex(document()).statements
        assert statement.vulnerability == "CVE-2024-3094"
        assert statement.aliases == ("GHSA-xxxx",)
        assert statement.products == (DIGEST,)
        assert statement.status is VexStatus.NOT_AFFECTED
        assert statement.justification is VexJustification.COMPONENT_NOT_PRESENT
        assert statement.document_id == "https://acme.io/vex/2026-11"

    def test_older_string_forms_and_purl_identifiers_are_read(self) -> None:
        purl = "pkg:oci/fraud@sha256%3A" + "0f" * 32
        parsed = parse_openvex(
            document(
                vulnerability={"@id": "https://nvd.nist.gov/vuln/detail/CVE-1"},
                products=["harbor.acme.io/ml/fraud@" + DIGEST, {"identifiers": {"purl": purl}}],
            )
        )
        (statement,) = parsed.statements
        assert statement.vulnerability == "https://nvd.nist.gov/vuln/detail/CVE-1"
        assert [product_digest(p) for p in statement.products] == [DIGEST, DIGEST]

    def test_a_statement_round_trips_through_its_stored_form(self) -> None:
        (statement,) = parse_openvex(document()).statements
        assert type(statement).from_json(statement.as_json()) == statement

    @pytest.mark.parametrize(
        ("broken", "field"),
        [
            ({"@context": "https://example.com/ns"}, "@context"),
            ({"@id": ""}, "@id"),
            ({"statements": []}, "statements"),
        ],
    )
    def test_a_malformed_document_is_refused_naming_the_field(
        self, broken: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(InvalidVex) as caught:
            parse_openvex({**document(), **broken})
        assert caught.value.extensions["field"] == field

    @pytest.mark.parametrize(
        ("statement", "field"),
        [
            ({"status": "maybe"}, "statements[0].status"),
            ({"vulnerability": {}}, "statements[0].vulnerability.name"),
            ({"products": []}, "statements[0].products"),
            ({"products": [{"subcomponents": []}]}, "statements[0].products[0]"),
            ({"justification": "trust_me"}, "statements[0].justification"),
            ({"justification": None}, "statements[0].justification"),
        ],
    )
    def test_a_malformed_statement_is_refused_naming_its_path(
        self, statement: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(InvalidVex) as caught:
            parse_openvex(document(**statement))
        assert caught.value.extensions["field"] == field

    def test_not_affected_with_an_impact_statement_instead_of_a_justification_is_accepted(
        self,
    ) -> None:
        (statement,) = parse_openvex(
            document(justification=None, impact_statement="the parser is never called")
        ).statements
        assert statement.impact_statement == "the parser is never called"

    def test_a_document_that_is_not_an_object_is_refused(self) -> None:
        with pytest.raises(InvalidVex, match="JSON object"):
            parse_openvex(["statements"])


class TestProductDigest:
    @pytest.mark.parametrize(
        "product",
        [
            DIGEST,
            f"harbor.acme.io/ml/fraud@{DIGEST}",
            f"pkg:oci/fraud@{DIGEST.replace(':', '%3A')}?repository_url=harbor.acme.io/ml",
        ],
    )
    def test_the_forms_naming_an_image_give_its_digest(self, product: str) -> None:
        assert product_digest(product) == DIGEST

    @pytest.mark.parametrize(
        "product", ["pkg:oci/fraud", "harbor.acme.io/ml/fraud:1.0", "pkg:deb/debian/xz@5.6.0"]
    )
    def test_forms_without_a_digest_give_none(self, product: str) -> None:
        assert product_digest(product) is None
