"""OpenVEX documents as policy input: `not_affected` statements suppress vulnerabilities.

Reads the OpenVEX JSON form (`@context` https://openvex.dev/ns, `statements[]`,
each with a `vulnerability` (`name` or `@id`, or the older bare string), its
`products` and a `status`). A product names the image by digest: the digest
itself, `<repository>@<digest>`, or an OCI purl `pkg:oci/<name>@sha256%3A<hex>`.
Its `subcomponents`, when given, narrow the statement to packages (purls or bare
names). Only `not_affected` suppresses; the other statuses are kept for the record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

from mlplane_scanner.domain.errors import InvalidVex
from mlplane_scanner.domain.findings import Finding, FindingKind

OPENVEX_CONTEXT_PREFIX = "https://openvex.dev/ns"
MAX_STATEMENTS = 10_000
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class VexStatus(StrEnum):
    NOT_AFFECTED = "not_affected"
    AFFECTED = "affected"
    FIXED = "fixed"
    UNDER_INVESTIGATION = "under_investigation"


class VexJustification(StrEnum):
    COMPONENT_NOT_PRESENT = "component_not_present"
    VULNERABLE_CODE_NOT_PRESENT = "vulnerable_code_not_present"
    VULNERABLE_CODE_NOT_IN_EXECUTE_PATH = "vulnerable_code_not_in_execute_path"
    VULNERABLE_CODE_CANNOT_BE_CONTROLLED_BY_ADVERSARY = (
        "vulnerable_code_cannot_be_controlled_by_adversary"
    )
    INLINE_MITIGATIONS_ALREADY_EXIST = "inline_mitigations_already_exist"


@dataclass(frozen=True, slots=True)
class VexStatement:
    """One statement: `vulnerability` (with `aliases`) in `products` has `status`."""

    vulnerability: str
    products: tuple[str, ...]
    status: VexStatus
    document_id: str
    aliases: tuple[str, ...] = ()
    subcomponents: tuple[str, ...] = ()
    justification: VexJustification | None = None
    impact_statement: str | None = None

    def names(self, finding: Finding) -> bool:
        return finding.id == self.vulnerability or finding.id in self.aliases

    def covers(self, finding: Finding, image_digest: str | None) -> bool:
        """True when this statement says `finding` does not affect the image `image_digest`."""
        if (
            self.status is not VexStatus.NOT_AFFECTED
            or finding.kind is not FindingKind.VULNERABILITY
            or image_digest is None
            or not self.names(finding)
        ):
            return False
        if not any(product_digest(p) == image_digest for p in self.products):
            return False
        if not self.subcomponents:
            return True
        return any(_names_package(s, finding) for s in self.subcomponents)

    def describe(self) -> str:
        why = self.justification.value if self.justification else self.impact_statement
        return f"VEX {self.document_id}: {self.vulnerability} not_affected ({why})"

    def as_json(self) -> dict[str, Any]:
        return {
            "vulnerability": self.vulnerability,
            "aliases": list(self.aliases),
            "products": list(self.products),
            "subcomponents": list(self.subcomponents),
            "status": self.status.value,
            "justification": None if self.justification is None else self.justification.value,
            "impact_statement": self.impact_statement,
            "document_id": self.document_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VexStatement:
        justification = data.get("justification")
        return cls(
            vulnerability=data["vulnerability"],
            aliases=tuple(data.get("aliases", ())),
            products=tuple(data["products"]),
            subcomponents=tuple(data.get("subcomponents", ())),
            status=VexStatus(data["status"]),
            justification=None if justification is None else VexJustification(justification),
            impact_statement=data.get("impact_statement"),
            document_id=data["document_id"],
        )


@dataclass(frozen=True, slots=True)
class VexDocument:
    id: str
    statements: tuple[VexStatement, ...]


def product_digest(product: str) -> str | None:
    """The image digest a product identifier names, or None when it names none.

    `sha256:<hex>`, `<repository>@sha256:<hex>` and `pkg:oci/<name>@sha256%3A<hex>`
    (qualifiers and subpath ignored) all name the digest.
    """
    if product.startswith("pkg:oci/"):
        rest = product.split("?", 1)[0].split("#", 1)[0]
        if "@" not in rest:
            return None
        candidate = unquote(rest.rsplit("@", 1)[1]).lower()
    elif "@" in product:
        candidate = product.rsplit("@", 1)[1].lower()
    else:
        candidate = product.lower()
    return candidate if _DIGEST.fullmatch(candidate) else None


def _names_package(subcomponent: str, finding: Finding) -> bool:
    if finding.package is None:
        return False
    if not subcomponent.startswith("pkg:"):
        return subcomponent == finding.package
    path = subcomponent.split("?", 1)[0].split("#", 1)[0]
    name_version = path.rsplit("/", 1)[-1]
    name, _, version = name_version.partition("@")
    if unquote(name) != finding.package:
        return False
    return not version or unquote(version) == finding.installed_version


def parse_openvex(document: Any) -> VexDocument:
    """The statements of an OpenVEX document (already decoded from JSON).

    Raises `InvalidVex` naming the field path of the first problem: not an object,
    a `@context` that is not OpenVEX, no `@id`, no or too many statements, a
    statement without a vulnerability name, products or a known status, a
    `not_affected` statement with neither `justification` nor `impact_statement`.
    """
    if not isinstance(document, Mapping):
        raise InvalidVex("a VEX document must be a JSON object", field="body")
    context = document.get("@context")
    if not isinstance(context, str) or not context.startswith(OPENVEX_CONTEXT_PREFIX):
        raise InvalidVex(
            f"@context must be an OpenVEX context ({OPENVEX_CONTEXT_PREFIX}/v...), not {context!r}",
            field="@context",
        )
    document_id = document.get("@id")
    if not isinstance(document_id, str) or not document_id.strip():
        raise InvalidVex("@id must name the document", field="@id")
    raw_statements = document.get("statements")
    if not isinstance(raw_statements, list) or not raw_statements:
        raise InvalidVex("statements must be a non-empty list", field="statements")
    if len(raw_statements) > MAX_STATEMENTS:
        raise InvalidVex(f"at most {MAX_STATEMENTS} statements per document", field="statements")
    statements = tuple(
        _statement(raw, f"statements[{index}]", document_id)
        for index, raw in enumerate(raw_statements)
    )
    return VexDocument(document_id, statements)


def _statement(raw: Any, path: str, document_id: str) -> VexStatement:
    if not isinstance(raw, Mapping):
        raise InvalidVex(f"{path} must be an object", field=path)
    name, aliases = _vulnerability(raw.get("vulnerability"), f"{path}.vulnerability")
    products, subcomponents = _products(raw.get("products"), f"{path}.products")
    status_value = raw.get("status")
    try:
        status = VexStatus(str(status_value))
    except ValueError:
        allowed = ", ".join(s.value for s in VexStatus)
        raise InvalidVex(
            f"{path}.status must be one of {allowed}, not {status_value!r}",
            field=f"{path}.status",
        ) from None
    justification_value = raw.get("justification")
    justification = None
    if justification_value is not None:
        try:
            justification = VexJustification(justification_value)
        except ValueError:
            allowed = ", ".join(j.value for j in VexJustification)
            raise InvalidVex(
                f"{path}.justification must be one of {allowed}, not {justification_value!r}",
                field=f"{path}.justification",
            ) from None
    impact = raw.get("impact_statement")
    if impact is not None and not isinstance(impact, str):
        raise InvalidVex(f"{path}.impact_statement must be text", field=f"{path}.impact_statement")
    if status is VexStatus.NOT_AFFECTED and justification is None and not impact:
        raise InvalidVex(
            f"{path}: a not_affected statement needs a justification or an impact_statement",
            field=f"{path}.justification",
        )
    return VexStatement(
        vulnerability=name,
        aliases=aliases,
        products=products,
        subcomponents=subcomponents,
        status=status,
        justification=justification,
        impact_statement=impact or None,
        document_id=document_id,
    )


def _vulnerability(raw: Any, path: str) -> tuple[str, tuple[str, ...]]:
    if isinstance(raw, str) and raw.strip():
        return raw, ()
    if isinstance(raw, Mapping):
        name = raw.get("name") or raw.get("@id")
        aliases = raw.get("aliases", [])
        if isinstance(name, str) and name.strip():
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise InvalidVex(f"{path}.aliases must be a list of ids", field=f"{path}.aliases")
            return name, tuple(aliases)
    raise InvalidVex(f"{path} must name the vulnerability (name or @id)", field=f"{path}.name")


def _products(raw: Any, path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not isinstance(raw, list) or not raw:
        raise InvalidVex(f"{path} must be a non-empty list", field=path)
    products: list[str] = []
    subcomponents: list[str] = []
    for index, item in enumerate(raw):
        item_path = f"{path}[{index}]"
        if isinstance(item, str) and item.strip():
            products.append(item)
            continue
        if not isinstance(item, Mapping):
            raise InvalidVex(f"{item_path} must be an identifier or an object", field=item_path)
        product_ids = _identifiers(item)
        if not product_ids:
            raise InvalidVex(f"{item_path} needs an @id or a purl identifier", field=item_path)
        products.extend(product_ids)
        raw_subs = item.get("subcomponents") or []
        if not isinstance(raw_subs, list):
            raise InvalidVex(f"{item_path}.subcomponents must be a list", field=item_path)
        for sub_index, sub in enumerate(raw_subs):
            sub_ids = [sub] if isinstance(sub, str) and sub.strip() else _identifiers(sub)
            if not sub_ids:
                raise InvalidVex(
                    f"{item_path}.subcomponents[{sub_index}] needs an @id or a purl",
                    field=f"{item_path}.subcomponents[{sub_index}]",
                )
            subcomponents.extend(sub_ids)
    return tuple(products), tuple(subcomponents)


def _identifiers(item: Any) -> list[str]:
    """A product's `@id` and its purl identifier: either may be the one naming the image."""
    if not isinstance(item, Mapping):
        return []
    identifiers = item.get("identifiers")
    purl = identifiers.get("purl") if isinstance(identifiers, Mapping) else None
    return [c for c in (item.get("@id"), purl) if isinstance(c, str) and c.strip()]
