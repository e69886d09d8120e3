"""Ingress routes: CI webhooks (authenticated by their signature), CloudEvents, and the
teams' webhook secrets (scope `admin`).

`POST /v1/webhooks/github/{team}` and `POST /v1/webhooks/gitlab/{team}`: the team
in the URL owns the secret the delivery must be signed with. A delivery id seen
before answers 200 `duplicate` and emits nothing; a signed delivery about
something else than a training run answers 200 `ignored`. `POST /v1/events`
takes CloudEvents in binary, structured or batch mode (scope `events:publish`);
an event with a control character in an attribute, or NUL anywhere in its data,
is refused with 422 before anything is accepted (PostgreSQL cannot store NUL, and
the consumers would fail on it until the event is dead-lettered).
`POST /v1/teams/{team}/deployment-requests` (scope `deploy:write`) asks the deployer
for a deployment by `deployment.requested` and answers 202 with the deployment's id at
once; the deployer decides it as it decides its own API's requests. Each route takes
bodies up to the gateway's `max_body_bytes`. A delivery row and the event it caused
commit together when the route returns (`WriteUow`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from mlplane_contracts.envelope import CloudEvent
from mlplane_contracts.errors import EventDecodeError
from mlplane_contracts.events import CiProvider, CiRunCompleted, ModelFramework
from mlplane_contracts.http import decode_http
from mlplane_contracts.types import DNS_LABEL_PATTERN
from mlplane_runtime.body_limit import max_body_bytes as body_limit
from mlplane_runtime.deps import WriteUow
from mlplane_runtime.errors import InvalidInput

from mlplane_gateway.auth.guard import Guard
from mlplane_gateway.auth.principals import Scope
from mlplane_gateway.deps import Admin, DeployWriter, Gateway, Publisher
from mlplane_gateway.errors import BadSignature, MalformedRequest, PayloadTooLarge
from mlplane_gateway.http_errors import GatewayRoute
from mlplane_gateway.ingress import ci_runs
from mlplane_gateway.ingress.ci_runs import CUSTOM_EVENT, Ignored, WebhookHints
from mlplane_gateway.ingress.schemas import (
    DeploymentRequestIn,
    DeploymentRequestOut,
    EventsOut,
    PostedEventOut,
    ReceivedOut,
    WebhookSecretOut,
)
from mlplane_gateway.ingress.service import IngressService, Outcome, Received
from mlplane_gateway.ingress.webhooks import github_signature_valid, gitlab_token_valid
from mlplane_gateway.settings import MAX_BODY_BYTES_CEILING

TeamPath = Annotated[str, Path(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]
ModelHint = Annotated[
    str | None,
    Query(
        max_length=63,
        pattern=DNS_LABEL_PATTERN,
        description="The model the delivery is about, when no convention names it.",
    ),
]
FrameworkHint = Annotated[ModelFramework | None, Query()]
DeliveryHeader = Annotated[str | None, Header(max_length=200)]

MAX_DELIVERY_ID = 200
_JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
_EVENTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Binary mode (ce-* headers, data as the body), structured or batch mode.",
        "content": {
            "application/cloudevents+json": {"schema": {"type": "object"}},
            "application/cloudevents-batch+json": {
                "schema": {"type": "array", "items": {"type": "object"}}
            },
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body (signatures are over these exact bytes); PayloadTooLarge past `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


class UnstorableEvent(InvalidInput):
    """An event holding text no consumer can store: refused before it is accepted."""


def _strings(value: Any, path: str) -> list[tuple[str, str]]:
    """Every string in a JSON value (keys included) with its path."""
    found: list[tuple[str, str]] = []
    pending = [(value, path)]
    while pending:
        current, where = pending.pop()
        if isinstance(current, str):
            found.append((where, current))
        elif isinstance(current, dict):
            for key, item in current.items():
                found.append((f"{where}.{key}", str(key)))
                pending.append((item, f"{where}.{key}"))
        elif isinstance(current, list):
            pending += [(item, f"{where}[{i}]") for i, item in enumerate(current)]
    return found


def refuse_unstorable_text(events: Sequence[CloudEvent]) -> None:
    """Raises UnstorableEvent naming the first attribute holding a control character, or
    the first string of an event's data holding NUL."""
    for index, event in enumerate(events):
        at = f"events[{index}]" if len(events) > 1 else "event"
        dumped = event.model_dump(mode="json")
        data = dumped.pop("data", None)
        for where, text in _strings(dumped, at):
            if _CONTROL_CHARACTER.search(text):
                raise UnstorableEvent(f"{where} must not contain control characters", field=where)
        for where, text in _strings(data, f"{at}.data"):
            if "\x00" in text:
                raise UnstorableEvent(f"{where} must not contain NUL (U+0000)", field=where)


def _delivery_id(*candidates: str | None) -> str:
    for candidate in candidates:
        if candidate:
            return candidate
    raise MalformedRequest("the delivery has no delivery id header")


def _answer(received: Received | Ignored, response: Response) -> ReceivedOut:
    if isinstance(received, Ignored):
        response.status_code = 200
        return ReceivedOut(status=Outcome.IGNORED.value, reason=received.reason)
    response.status_code = 202 if received.outcome is Outcome.ACCEPTED else 200
    return ReceivedOut.of(received)


# Declared once for every hosting: the runtime lets bodies up to the ceiling through,
# `read_body` holds each to its hosting's own `max_body_bytes`.
_LIMIT = body_limit(MAX_BODY_BYTES_CEILING)
ADMIN_DOC = Guard.doc(Scope.ADMIN)

router = APIRouter(prefix="/v1", tags=["ingress"], route_class=GatewayRoute)


@router.put("/teams/{team}/webhook-secret", tags=["admin"], openapi_extra=ADMIN_DOC)
async def rotate_webhook_secret(
    team: TeamPath, actor: Admin, gateway: Gateway, uow: WriteUow
) -> WebhookSecretOut:
    """A new webhook secret for the team, in this answer only; the old one stops working."""
    secret = await gateway.ingress(uow).rotate_webhook_secret(actor, team)
    return WebhookSecretOut(team=team, secret=secret)


@router.post(
    "/webhooks/github/{team}",
    status_code=202,
    responses={200: {"model": ReceivedOut, "description": "duplicate or ignored"}},
    openapi_extra={**_JSON_BODY, **_LIMIT},
)
async def github_webhook(
    team: TeamPath,
    request: Request,
    response: Response,
    gateway: Gateway,
    uow: WriteUow,
    model: ModelHint = None,
    framework: FrameworkHint = None,
    x_github_event: DeliveryHeader = None,
    x_github_delivery: DeliveryHeader = None,
    x_hub_signature_256: DeliveryHeader = None,
) -> ReceivedOut:
    """A GitHub webhook (`workflow_run`, `release`, or the custom `mlplane.run`),
    signed with the team's secret in `X-Hub-Signature-256`."""
    body = await read_body(request, gateway.settings.max_body_bytes)
    ingress = gateway.ingress(uow)
    secret = await ingress.webhook_secret(team)
    if secret is None or not github_signature_valid(secret, body, x_hub_signature_256):
        raise BadSignature("X-Hub-Signature-256 is not the signature of this body")
    delivery_id = _delivery_id(x_github_delivery)
    hints = WebhookHints(model=model, framework=framework)
    fact: CiRunCompleted | Ignored
    if x_github_event == "workflow_run":
        fact = ci_runs.from_github_workflow_run(team, body, hints)
    elif x_github_event == "release":
        fact = ci_runs.from_github_release(team, body, hints)
    elif x_github_event == CUSTOM_EVENT:
        fact = ci_runs.from_custom(team, CiProvider.GITHUB_ACTIONS, body)
    else:
        fact = Ignored(f"GitHub event {x_github_event!r} is not about a training run")
    received = await _accept(ingress, CiProvider.GITHUB_ACTIONS, delivery_id, fact)
    return _answer(received, response)


@router.post(
    "/webhooks/gitlab/{team}",
    status_code=202,
    responses={200: {"model": ReceivedOut, "description": "duplicate or ignored"}},
    openapi_extra={**_JSON_BODY, **_LIMIT},
)
async def gitlab_webhook(
    team: TeamPath,
    request: Request,
    response: Response,
    gateway: Gateway,
    uow: WriteUow,
    model: ModelHint = None,
    framework: FrameworkHint = None,
    x_gitlab_event: DeliveryHeader = None,
    x_gitlab_token: DeliveryHeader = None,
    x_gitlab_event_uuid: DeliveryHeader = None,
    idempotency_key: DeliveryHeader = None,
) -> ReceivedOut:
    """A GitLab pipeline event (or the custom `mlplane.run`), with the team's secret
    as `X-Gitlab-Token`."""
    body = await read_body(request, gateway.settings.max_body_bytes)
    ingress = gateway.ingress(uow)
    secret = await ingress.webhook_secret(team)
    if secret is None or not gitlab_token_valid(secret, x_gitlab_token):
        raise BadSignature("X-Gitlab-Token is not the team's webhook secret")
    # Idempotency-Key is the same on GitLab's retries of one delivery.
    delivery_id = _delivery_id(idempotency_key, x_gitlab_event_uuid)
    hints = WebhookHints(model=model, framework=framework)
    fact: CiRunCompleted | Ignored
    if x_gitlab_event == "Pipeline Hook":
        fact = ci_runs.from_gitlab_pipeline(team, body, hints, datetime.now(UTC))
    elif x_gitlab_event == CUSTOM_EVENT:
        fact = ci_runs.from_custom(team, CiProvider.GITLAB_CI, body)
    else:
        fact = Ignored(f"GitLab event {x_gitlab_event!r} is not about a training run")
    received = await _accept(ingress, CiProvider.GITLAB_CI, delivery_id, fact)
    return _answer(received, response)


@router.post(
    "/events",
    status_code=202,
    openapi_extra={**Guard.doc(Scope.EVENTS_PUBLISH), **_EVENTS_BODY, **_LIMIT},
)
async def publish_events(
    request: Request, actor: Publisher, gateway: Gateway, uow: WriteUow
) -> EventsOut:
    """CloudEvents over HTTP, in binary, structured or batch mode. Each is published
    once per `(source, id)`; a repeat answers `duplicate`."""
    body = await read_body(request, gateway.settings.max_body_bytes)
    try:
        events = decode_http(request.headers, body)
    except EventDecodeError as exc:
        raise MalformedRequest(f"not a valid CloudEvent: {exc}") from exc
    refuse_unstorable_text(events)
    received = await gateway.ingress(uow).accept_events(actor, events)
    return EventsOut(
        events=[
            PostedEventOut(id=event.id, source=event.source, **ReceivedOut.of(r).model_dump())
            for event, r in zip(events, received, strict=True)
        ]
    )


@router.post(
    "/teams/{team}/deployment-requests",
    status_code=202,
    tags=["deployments"],
    responses={200: {"model": DeploymentRequestOut, "description": "duplicate"}},
    openapi_extra=Guard.doc(Scope.DEPLOY_WRITE),
)
async def request_deployment(
    team: TeamPath,
    body: DeploymentRequestIn,
    response: Response,
    actor: DeployWriter,
    gateway: Gateway,
    uow: WriteUow,
    idempotency_key: DeliveryHeader = None,
) -> DeploymentRequestOut:
    """Ask for a deployment of a version to an environment, decided by the deployer's
    policy as its own API's requests are. 202 with the deployment's id at once (it
    answers at `location` once the deployer has taken it; a refusal is announced as
    `deployment.status_changed` with phase `rejected`). The same `Idempotency-Key`
    again answers 200 `duplicate` with the same deployment id and asks nothing more."""
    asked = await gateway.ingress(uow).request_deployment(
        actor,
        team,
        model=body.model,
        version=body.version,
        environment=body.environment,
        reason=body.reason,
        idempotency_key=idempotency_key or None,
    )
    response.status_code = 202 if asked.received.outcome is Outcome.ACCEPTED else 200
    return DeploymentRequestOut.of_request(asked)


async def _accept(
    ingress: IngressService, provider: CiProvider, delivery_id: str, fact: CiRunCompleted | Ignored
) -> Received | Ignored:
    if isinstance(fact, Ignored):
        return fact
    return await ingress.accept_ci_run(provider.value, delivery_id, fact)
