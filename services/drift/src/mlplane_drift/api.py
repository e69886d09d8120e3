"""The drift service's HTTP API (mounted under `/drift`): parse, call one use case, answer.

The team is always the caller's (the gateway's signed identity), never the body's.

- `PUT|GET /models/{model}/versions/{version}/reference`: set the reference profile
  from a dataset in object storage (JSON `{"uri": "s3://..."}`) or uploaded as the body
  (`Content-Type: application/vnd.apache.parquet` or `text/csv`); read what it holds;
- `PUT|GET /models/{model}/environments/{environment}/window`: how windows close;
- `POST /samples`: a batch of prediction samples (scope `events:publish`);
- `POST /samples/parquet`: a Parquet file of samples in object storage (`events:publish`);
- `GET /models/{model}/versions/{version}/windows`: windows, open to failed (with why);
- `GET /models/{model}/reports`, `GET /reports/{id}?format=json|html|png`.

Reads need `models:read`, changes `models:write`, intake `events:publish`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from mlplane_contracts.events import Environment
from mlplane_contracts.scopes import EVENTS_PUBLISH, MODELS_READ, MODELS_WRITE
from mlplane_contracts.types import DNS_LABEL_PATTERN, MAX_INT32
from mlplane_runtime.body_limit import max_body_bytes
from mlplane_runtime.deps import Principal, ReadUow, Team, WriteUow, require, scoped
from mlplane_runtime.errors import InvalidInput, MlplaneError
from pydantic import ValidationError

from mlplane_drift import metrics
from mlplane_drift.datasets import (
    check_location,
    format_of_content_type,
    format_of_uri,
    parquet_from_location,
    profile_from_bytes,
    profile_from_location,
)
from mlplane_drift.deps import Drift
from mlplane_drift.domain.errors import InvalidSamples
from mlplane_drift.domain.samples import SampleRow
from mlplane_drift.domain.windows import WindowPolicy
from mlplane_drift.profile import FeatureSpec
from mlplane_drift.render import report_html, report_png
from mlplane_drift.schemas import (
    IntakeOut,
    ParquetSamplesIn,
    ReferenceLocationIn,
    ReferenceOut,
    ReportList,
    ReportSummaryOut,
    SamplesIn,
    WindowList,
    WindowOut,
    WindowPolicyIn,
    WindowPolicyOut,
    inline_schema,
)
from mlplane_drift.service import Intake

MIB = 1024 * 1024
MAX_UPLOAD_BYTES = 256 * MIB
"""The largest reference dataset uploaded as a request body (bigger: put it in S3)."""
MAX_SAMPLES_BODY_BYTES = 8 * MIB
"""The largest `POST /samples` body: what the gateway's facade forwards (10,000 samples
of 25 features take about 6 MB)."""

ModelName = Annotated[str, Path(pattern=DNS_LABEL_PATTERN, max_length=63)]
VersionPath = Annotated[int, Path(ge=1, le=MAX_INT32)]
Env = Annotated[Environment, Path()]

router = APIRouter(
    tags=["drift"], dependencies=[Depends(scoped(read=MODELS_READ, write=MODELS_WRITE))]
)
intake_router = APIRouter(tags=["drift"], dependencies=[Depends(require(EVENTS_PUBLISH))])


class ReportFormat(StrEnum):
    JSON = "json"
    HTML = "html"
    PNG = "png"


# -- references -------------------------------------------------------------------------


@router.put(
    "/models/{model}/versions/{version}/reference",
    openapi_extra={
        **max_body_bytes(MAX_UPLOAD_BYTES),
        "requestBody": {
            "content": {
                "application/json": {"schema": inline_schema(ReferenceLocationIn)},
                "application/vnd.apache.parquet": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            }
        },
    },
)
async def put_reference(
    model: ModelName,
    version: VersionPath,
    request: Request,
    team: Team,
    who: Principal,
    drift: Drift,
    uow: WriteUow,
) -> ReferenceOut:
    service = drift.service(uow)
    await service.require_version(team, model, version)
    content_type = request.headers.get("content-type", "")
    uploaded = format_of_content_type(content_type)
    if uploaded is not None:
        body = await request.body()
        profile = await profile_from_bytes(body, uploaded)
        source = f"upload ({uploaded.value}, {len(body)} bytes)"
    elif content_type.split(";", 1)[0].strip().lower() == "application/json":
        location = _location(await request.body())
        check_location(location.uri, drift.settings.data_locations(team))
        features = [FeatureSpec(f.name, f.kind) for f in location.features or ()]
        profile = await profile_from_location(
            drift.blobs,
            location.uri,
            location.format or format_of_uri(location.uri),
            drift.settings.max_dataset_bytes,
            features or None,
        )
        source = location.uri
    else:
        raise InvalidInput(
            "send the dataset as application/vnd.apache.parquet or text/csv, or its "
            'location as application/json {"uri": "s3://bucket/key"}',
            content_type=content_type[:100],
        )
    row = await service.set_reference(team, model, version, profile, source=source, by=who)
    return ReferenceOut.of(row)


def _location(body: bytes) -> ReferenceLocationIn:
    try:
        return ReferenceLocationIn.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidInput(
            f"the dataset location is not valid: {_first_error(exc)}",
            errors=[
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors()[:20]
            ],
        ) from None


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


@router.get("/models/{model}/versions/{version}/reference")
async def get_reference(
    model: ModelName, version: VersionPath, team: Team, drift: Drift, uow: ReadUow
) -> ReferenceOut:
    return ReferenceOut.of(await drift.service(uow).reference(team, model, version))


# -- window policies --------------------------------------------------------------------


@router.put("/models/{model}/environments/{environment}/window")
async def put_window_policy(
    model: ModelName,
    environment: Env,
    body: WindowPolicyIn,
    team: Team,
    who: Principal,
    drift: Drift,
    uow: WriteUow,
) -> WindowPolicyOut:
    policy = WindowPolicy(body.count, body.seconds)
    await drift.service(uow).put_window_policy(team, model, environment, policy, who)
    return WindowPolicyOut(
        model=model,
        environment=environment,
        count=policy.max_count,
        seconds=policy.max_seconds,
        default=False,
    )


@router.get("/models/{model}/environments/{environment}/window")
async def get_window_policy(
    model: ModelName, environment: Env, team: Team, drift: Drift, uow: ReadUow
) -> WindowPolicyOut:
    policy, default = await drift.service(uow).window_policy(team, model, environment)
    return WindowPolicyOut(
        model=model,
        environment=environment,
        count=policy.max_count,
        seconds=policy.max_seconds,
        default=default,
    )


# -- intake -----------------------------------------------------------------------------


@contextmanager
def _refusals(drift: Drift, source: str) -> Iterator[None]:
    """Count a batch refused for good (4xx), by its problem type's last part."""
    try:
        yield
    except MlplaneError as exc:
        if not exc.retryable:
            reason = exc.problem_type.rsplit("/", 1)[-1]
            metrics.REFUSED.labels(drift.name, source, reason).inc()
        raise


def _intake_out(drift: Drift, uow: Any, intake: Intake, source: str) -> IntakeOut:
    metrics.SAMPLES.labels(drift.name, source).inc(intake.accepted)
    if intake.closed:
        uow.after_commit(drift.worker.wake)
    window = intake.window
    return IntakeOut(
        accepted=intake.accepted,
        window_id=None if window is None else window.id,
        window_samples=None if window is None else window.sample_count,
        window_closed=intake.closed,
        reference_samples=intake.reference_samples,
    )


@intake_router.post(
    "/samples", status_code=202, openapi_extra=max_body_bytes(MAX_SAMPLES_BODY_BYTES)
)
async def post_samples(body: SamplesIn, team: Team, drift: Drift, uow: WriteUow) -> IntakeOut:
    limit = drift.settings.max_batch_samples
    if len(body.samples) > limit:
        raise InvalidSamples(
            f"a batch holds at most {limit} samples, this one {len(body.samples)}: split it",
            max_samples=limit,
        )
    rows = [SampleRow(dict(s.features), s.prediction, s.label) for s in body.samples]
    with _refusals(drift, "http"):
        intake = await drift.service(uow).add_samples(
            team, body.model, body.version, body.environment, rows
        )
    return _intake_out(drift, uow, intake, "http")


@intake_router.post("/samples/parquet", status_code=202)
async def post_parquet_samples(
    body: ParquetSamplesIn, team: Team, drift: Drift, uow: WriteUow
) -> IntakeOut:
    with _refusals(drift, "parquet"):
        check_location(body.uri, drift.settings.data_locations(team))
        service = drift.service(uow)
        reference = await service.reference(team, body.model, body.version)
        columns = [feature["name"] for feature in reference.features]
        table = await parquet_from_location(
            drift.blobs, body.uri, columns, drift.settings.max_dataset_bytes
        )
        intake = await service.add_samples(team, body.model, body.version, body.environment, table)
    return _intake_out(drift, uow, intake, "parquet")


# -- windows --------------------------------------------------------------------------


@router.get("/models/{model}/versions/{version}/windows")
async def list_windows(
    model: ModelName,
    version: VersionPath,
    team: Team,
    drift: Drift,
    uow: ReadUow,
    environment: Environment | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> WindowList:
    rows = await drift.service(uow).windows(team, model, version, environment, limit)
    return WindowList(windows=[WindowOut.of(row) for row in rows])


# -- reports ----------------------------------------------------------------------------


@router.get("/models/{model}/reports")
async def list_reports(
    model: ModelName,
    team: Team,
    drift: Drift,
    uow: ReadUow,
    version: Annotated[int | None, Query(ge=1, le=MAX_INT32)] = None,
    environment: Environment | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ReportList:
    rows = await drift.service(uow).reports(
        team, model, version=version, environment=environment, limit=limit
    )
    return ReportList(reports=[ReportSummaryOut.of(row) for row in rows])


@router.get(
    "/reports/{report_id}",
    responses={
        200: {
            "content": {
                "application/json": {},
                "text/html": {"schema": {"type": "string"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            }
        }
    },
)
async def get_report(
    report_id: UUID,
    team: Team,
    drift: Drift,
    uow: ReadUow,
    format: ReportFormat = ReportFormat.JSON,
) -> Response:
    row = await drift.service(uow).report(team, report_id)
    document = {**row.document, "report_uri": row.report_uri}
    if format is ReportFormat.HTML:
        return Response(report_html(document), media_type="text/html; charset=utf-8")
    if format is ReportFormat.PNG:
        image = await asyncio.to_thread(report_png, document)
        return Response(image, media_type="image/png")
    return Response(json.dumps(document).encode(), media_type="application/json")
