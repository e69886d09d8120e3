"""The scanner's manifest scan of a rendered deployment, asked before anything is committed.

The deployer sends the rendered objects to the scanner's `POST /manifests/scan` (Trivy's
Kubernetes misconfiguration checks, judged under the team's scanner policy for the
environment) and signs the call as the gateway would: a short-lived identity token for
audience `scanner`, the deployment's team, principal `service:deployer`, scope
`models:read` and nothing more (the scan changes nothing).

- a `failed` verdict is a denial (`ManifestScanFailed`, not retried) carrying the
  scanner's reasons, each naming the rendered file it is about;
- a scanner that does not answer, answers 5xx or 429, or refuses the deployer's identity
  raises `ScannerUnavailable` (retried like a GitOps remote that does not answer);
- any other refusal (the manifests are too large for it, say) is `ManifestScanRefused`.

A deployer environment that is not one of the scanner's (`dev`, `staging`, `prod`) is
judged under the team's `prod` policy: the strictest is the safe reading of a name the
scanner does not know.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from mlplane_contracts.events import Environment
from mlplane_contracts.scopes import MODELS_READ
from mlplane_runtime.errors import InvalidInput, Unavailable
from mlplane_runtime.forwarded_identity import IDENTITY_HEADER, sign_forwarded_identity

from mlplane_deployer.domain.errors import DeploymentDenied

SCANNER_AUDIENCE: Final = "scanner"
SCAN_PRINCIPAL: Final = "service:deployer"
TOKEN_LIFETIME_S: Final = 30
CONNECT_TIMEOUT_S: Final = 5.0
_SCANNER_ENVIRONMENTS: Final = frozenset(e.value for e in Environment)
# The scanner names each object it was sent `manifest-<index>.yaml`, in the order sent.
_SCANNED_FILE: Final = re.compile(r"\bmanifest-(\d+)\.yaml\b")

RenderedObjects = Sequence[tuple[str, Mapping[str, Any]]]
"""(path in the GitOps repository, Kubernetes object), as `RenderedTree.objects` holds them."""

_log = logging.getLogger("mlplane.deployer")


class ManifestScanFailed(DeploymentDenied):
    """The scanner's manifest scan failed under the team's policy; `errors` lists why."""

    problem_type = "https://mlplane.io/problems/manifest-scan-failed"
    title = "Manifest scan failed"


class ManifestScanRefused(InvalidInput):
    """The scanner refused the manifests as sent (too many, too large): no retry helps."""


class ScannerUnavailable(Unavailable):
    """The scanner did not answer, failed, or refused the deployer's identity; retried."""


@dataclass(frozen=True, slots=True)
class ManifestScanResult:
    """The scanner's verdict on one rendered deployment."""

    environment: str
    """The scanner environment whose policy judged it."""
    policy_version: int
    passed: bool
    reasons: tuple[str, ...]


def scanner_environment(environment: str) -> str:
    """The scanner environment whose policy judges a deployer environment (`prod` for a
    name the scanner does not know)."""
    return environment if environment in _SCANNER_ENVIRONMENTS else Environment.PROD.value


@dataclass(frozen=True, slots=True)
class ScannerManifestClient:
    """Calls `base_url`/manifests/scan (base URL with the scanner's mount, no trailing
    slash), signing each call with `key`, the scanner's identity key."""

    base_url: str
    key: bytes = field(repr=False)
    timeout_s: float = 120.0
    transport: httpx.AsyncBaseTransport | None = None
    """Tests only: another way to reach the scanner (None: the network)."""

    async def scan(
        self, team: str, environment: str, objects: RenderedObjects
    ) -> ManifestScanResult:
        """The scanner's verdict on `objects` for `team`'s `environment`.

        Raises ScannerUnavailable (no answer, 5xx, 429, 401/403, an answer that is not a
        scan), ManifestScanRefused (any other 4xx).
        """
        where = scanner_environment(environment)
        body = json.dumps([dict(obj) for _, obj in objects], separators=(",", ":"))
        token = sign_forwarded_identity(
            self.key,
            audience=SCANNER_AUDIENCE,
            principal=SCAN_PRINCIPAL,
            team=team,
            scopes=(MODELS_READ,),
            lifetime_s=TOKEN_LIFETIME_S,
        )
        url = f"{self.base_url}/manifests/scan"
        try:
            # A client per scan: a scan costs Trivy's second, a connection nothing beside it.
            async with httpx.AsyncClient(
                transport=self.transport,
                timeout=httpx.Timeout(self.timeout_s, connect=CONNECT_TIMEOUT_S),
            ) as client:
                answer = await client.post(
                    url,
                    params={"environment": where},
                    content=body.encode(),
                    headers={"Content-Type": "application/json", IDENTITY_HEADER: token},
                )
        except httpx.HTTPError as exc:
            raise ScannerUnavailable(
                f"the scanner at {self.base_url} did not answer the manifest scan: "
                f"{type(exc).__name__}"
            ) from None
        return _result(answer, where, objects, self.base_url)


def _result(
    answer: httpx.Response, where: str, objects: RenderedObjects, base_url: str
) -> ManifestScanResult:
    status = answer.status_code
    if status >= 500 or status in (401, 403, 408, 429):
        # 401/403: a key that does not match the scanner's (or is being rotated).
        raise ScannerUnavailable(
            f"the scanner at {base_url} answered {status} to the manifest scan"
            + (": check MLPLANE_DEPLOYER_SCANNER_IDENTITY_KEY" if status in (401, 403) else "")
        )
    if status != 200:
        raise ManifestScanRefused(
            f"the scanner refused the rendered manifests ({status}): {_detail(answer)}"
        )
    try:
        scan = answer.json()
        verdict, reasons = scan["verdict"], scan["reasons"]
        policy_version = int(scan["policy_version"])
        if not isinstance(verdict, str) or not isinstance(reasons, list):
            raise TypeError(verdict)
    except (ValueError, KeyError, TypeError):
        raise ScannerUnavailable(
            f"the scanner at {base_url} answered something that is not a manifest scan"
        ) from None
    paths = [path for path, _ in objects]
    return ManifestScanResult(
        environment=where,
        policy_version=policy_version,
        passed=verdict == "passed",
        reasons=tuple(_named(str(reason), paths) for reason in reasons),
    )


def _named(reason: str, paths: Sequence[str]) -> str:
    """`reason` with the scanner's `manifest-<n>.yaml` replaced by the rendered file's path."""

    def path_of(found: re.Match[str]) -> str:
        index = int(found.group(1))
        return paths[index] if index < len(paths) else found.group(0)

    return _SCANNED_FILE.sub(path_of, reason)


def _detail(answer: httpx.Response) -> str:
    try:
        detail = answer.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail)[:500] if detail else answer.reason_phrase


class ManifestScanGate:
    """What the deployment worker asks before a commit: the scanner's verdict, or (with
    `client` None: `MLPLANE_DEPLOYER_MANIFEST_SCAN=off`) a warning that nothing was
    scanned."""

    def __init__(self, client: ScannerManifestClient | None) -> None:
        self.client = client

    async def check(self, team: str, environment: str, objects: RenderedObjects) -> None:
        """Returns when the scan passed (or scanning is off).

        Raises ManifestScanFailed listing the scanner's reasons (`errors`), and what
        `ScannerManifestClient.scan` raises.
        """
        if self.client is None:
            _log.warning(
                "manifest scan is off (MLPLANE_DEPLOYER_MANIFEST_SCAN=off): %s/%s committed "
                "without the scanner's verdict",
                team,
                environment,
            )
            return
        result = await self.client.scan(team, environment, objects)
        if not result.passed:
            raise ManifestScanFailed(
                f"the rendered manifests failed the scanner's manifest scan under "
                f"{result.environment} policy v{result.policy_version}",
                errors=list(result.reasons) or ["the scanner gave no reason"],
                scan_policy_version=result.policy_version,
            )
