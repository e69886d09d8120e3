"""The scanner's HTTP API (mounted under `/scanner`): parse, call one use case, answer.

The team comes from `X-Mlplane-Team` (the gateway sets it); a team sees only its
own policies and scans. Policies carry an `ETag` (`"<environment>-<version>"`);
edits with `If-Match` are refused with 412 when the policy moved on meanwhile.

- `GET /policies`, `GET|PUT /policies/{environment}`: read, or write a new version;
- `POST /policies/{environment}/exceptions`, `DELETE .../exceptions/{finding_id}`;
- `POST /policies/{environment}/vex`: an OpenVEX document;
- `GET /scans`, `GET /scans/{digest}`: findings, verdict per environment, report URIs;
- `GET /scans/{digest}/sbom`: the newest SBOM of the image (CycloneDX JSON), to download;
- `POST /manifests/scan`: rendered Kubernetes manifests → misconfigurations, verdict.

Reads need `models:read`, a manifest scan `models:read` (it changes nothing), every
change of a policy (thresholds, exceptions, VEX) `admin`: it moves the gate. A change
commits when its route returns (`WriteUow`), before the answer is sent.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from mlplane_contracts.events import Environment
from mlplane_contracts.scopes import ADMIN, MODELS_READ, MODELS_WRITE
from mlplane_contracts.types import DIGEST_PATTERN
from mlplane_runtime.body_limit import max_body_bytes
from mlplane_runtime.deps import Principal, ReadUow, Team, WriteUow, require, scoped

from mlplane_scanner.deps import Scanner
from mlplane_scanner.domain.errors import InvalidVex
from mlplane_scanner.domain.evaluation import evaluate
from mlplane_scanner.domain.manifests import split_manifests
from mlplane_scanner.domain.vex import parse_openvex
from mlplane_scanner.reports import CYCLONEDX
from mlplane_scanner.schemas import (
    DigestScans,
    ExceptionIn,
    FindingOut,
    ManifestScanOut,
    PolicyIn,
    PolicyOut,
    ScanList,
    ScanOut,
    ScanSummaryOut,
)
from mlplane_scanner.service import policy_etag, utc_now

MAX_VEX_BYTES = 8 * 1024 * 1024

IfMatch = Annotated[str | None, Header(alias="If-Match")]
Env = Annotated[Environment, Path()]
ImageDigest = Annotated[str, Path(pattern=DIGEST_PATTERN)]
FindingId = Annotated[str, Path(min_length=1, max_length=1024)]

router = APIRouter(
    tags=["scanner"],
    dependencies=[
        Depends(scoped(read=MODELS_READ, write=MODELS_WRITE, read_only_posts=("/manifests/scan",)))
    ],
)
policy_admin = Depends(require(ADMIN))


def _answer(policy_out: PolicyOut, response: Response, etag: str) -> PolicyOut:
    response.headers["ETag"] = etag
    return policy_out


# -- policies ---------------------------------------------------------------------


@router.get("/policies")
async def list_policies(team: Team, scanner: Scanner, uow: ReadUow) -> list[PolicyOut]:
    now = utc_now()
    policies = await scanner.service(uow).policies(team)
    return [PolicyOut.of(p, now) for p in policies.values()]


@router.get("/policies/{environment}")
async def get_policy(
    environment: Env, team: Team, scanner: Scanner, uow: ReadUow, response: Response
) -> PolicyOut:
    policy = await scanner.service(uow).policy(team, environment)
    return _answer(PolicyOut.of(policy, utc_now()), response, policy_etag(policy))


@router.put("/policies/{environment}", dependencies=[policy_admin])
async def put_policy(
    environment: Env,
    body: PolicyIn,
    team: Team,
    scanner: Scanner,
    uow: WriteUow,
    who: Principal,
    response: Response,
    if_match: IfMatch = None,
) -> PolicyOut:
    policy = await scanner.service(uow).put_policy(
        team,
        environment,
        max_severity=body.max_severity,
        ignore_unfixed=body.ignore_unfixed,
        license_deny=body.license_deny,
        block_when_vulnerabilities_not_assessed=body.block_when_vulnerabilities_not_assessed,
        by=who,
        if_match=if_match,
    )
    return _answer(PolicyOut.of(policy, utc_now()), response, policy_etag(policy))


@router.post("/policies/{environment}/exceptions", status_code=201, dependencies=[policy_admin])
async def add_exception(
    environment: Env,
    body: ExceptionIn,
    team: Team,
    scanner: Scanner,
    uow: WriteUow,
    who: Principal,
    response: Response,
    if_match: IfMatch = None,
) -> PolicyOut:
    now = utc_now()
    policy = await scanner.service(uow).add_exception(
        team, environment, body.to_domain(now), by=who, if_match=if_match
    )
    return _answer(PolicyOut.of(policy, now), response, policy_etag(policy))


@router.delete("/policies/{environment}/exceptions/{finding_id}", dependencies=[policy_admin])
async def remove_exception(
    environment: Env,
    finding_id: FindingId,
    team: Team,
    scanner: Scanner,
    uow: WriteUow,
    who: Principal,
    response: Response,
    package: Annotated[str | None, Query(min_length=1, max_length=1024)] = None,
    if_match: IfMatch = None,
) -> PolicyOut:
    policy = await scanner.service(uow).remove_exception(
        team, environment, finding_id, package, by=who, if_match=if_match
    )
    return _answer(PolicyOut.of(policy, utc_now()), response, policy_etag(policy))


@router.post(
    "/policies/{environment}/vex",
    status_code=201,
    dependencies=[policy_admin],
    openapi_extra=max_body_bytes(MAX_VEX_BYTES),
)
async def add_vex(
    environment: Env,
    request: Request,
    team: Team,
    scanner: Scanner,
    uow: WriteUow,
    who: Principal,
    response: Response,
) -> PolicyOut:
    raw = await request.body()
    if len(raw) > MAX_VEX_BYTES:
        raise InvalidVex(f"a VEX document is at most {MAX_VEX_BYTES} bytes", field="body")
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise InvalidVex(f"the body is not JSON: {exc}", field="body") from None
    policy = await scanner.service(uow).add_vex(team, environment, parse_openvex(document), by=who)
    return _answer(PolicyOut.of(policy, utc_now()), response, policy_etag(policy))


# -- scans ------------------------------------------------------------------------


@router.get("/scans")
async def list_scans(
    team: Team,
    scanner: Scanner,
    uow: ReadUow,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> ScanList:
    scans = await scanner.service(uow).list_scans(team, limit, before)
    return ScanList(
        scans=[ScanSummaryOut.of(s) for s in scans],
        next_before=scans[-1].id if len(scans) == limit else None,
    )


@router.get("/scans/{digest}")
async def get_scans(digest: ImageDigest, team: Team, scanner: Scanner, uow: ReadUow) -> DigestScans:
    views = await scanner.service(uow).scan_views(team, digest)
    return DigestScans(digest=digest, scans=[ScanOut.of_view(v) for v in views])


@router.get(
    "/scans/{digest}/sbom",
    response_class=Response,
    responses={200: {"content": {CYCLONEDX: {}}, "description": "the SBOM, CycloneDX JSON"}},
)
async def get_sbom(digest: ImageDigest, team: Team, scanner: Scanner, uow: ReadUow) -> Response:
    uri = await scanner.service(uow).sbom_uri(team, digest)
    document = await scanner.reports.get(uri)
    name = f"sbom-{digest.removeprefix('sha256:')[:12]}.cdx.json"
    return Response(
        document,
        media_type=CYCLONEDX,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- manifests --------------------------------------------------------------------


@router.post("/manifests/scan")
async def scan_manifests(
    request: Request,
    team: Team,
    scanner: Scanner,
    uow: ReadUow,
    environment: Annotated[Environment, Query()] = Environment.PROD,
) -> ManifestScanOut:
    files = split_manifests(await request.body(), request.headers.get("content-type"))
    policy = await scanner.service(uow).policy(team, environment)
    # Release the connection while Trivy runs: it may take seconds.
    await uow.rollback()
    findings = await scanner.runner.scan_config_files(files)
    result = evaluate(findings, policy, now=utc_now(), vulnerabilities_assessed=True)
    return ManifestScanOut(
        environment=environment.value,
        policy_version=policy.version,
        verdict=result.verdict.value,
        reasons=list(result.reasons),
        counts={s.value: n for s, n in result.counts.items()},
        findings=[FindingOut.of(f) for f in findings],
    )
