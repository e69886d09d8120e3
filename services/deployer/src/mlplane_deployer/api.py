"""The deployer's HTTP API (mounted under `/deployer`): parse, call one use case, answer.

The team, principal and scopes come from the gateway's signed identity. Reads need
`models:read`; requests, promotions and rollbacks `deploy:write`; approvals
`deploy:approve`; policy changes `admin` as well. A change commits when its route
returns (`WriteUow`), before the answer is sent, and wakes the job worker once
committed. A denied request is answered 409 problem+json listing every reason; the
decision is stored all the same (the route returns, so its unit of work commits).
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Response
from mlplane_contracts.events import Environment
from mlplane_contracts.scopes import ADMIN, DEPLOY_APPROVE, DEPLOY_WRITE, MODELS_READ
from mlplane_contracts.types import DNS_LABEL_PATTERN
from mlplane_runtime.caller import Caller
from mlplane_runtime.deps import Principal, ReadUow, Team, WriteUow, require, scoped
from mlplane_runtime.errors import InvalidInput
from mlplane_runtime.problem import ProblemResponse, problem_response

from mlplane_deployer.deps import Deployer
from mlplane_deployer.domain.deployments import DeploymentAsk
from mlplane_deployer.schemas import (
    ApprovalOut,
    DecisionOut,
    DeploymentIn,
    DeploymentOut,
    DeploymentPage,
    PolicyIn,
    PolicyOut,
    RulesModel,
)
from mlplane_deployer.service import RequestOutcome
from mlplane_deployer.store import DeploymentFilter

MAX_PAGE_SIZE = 500

IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=64)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$"),
]

router = APIRouter(
    tags=["deployer"], dependencies=[Depends(scoped(read=MODELS_READ, write=DEPLOY_WRITE))]
)
approvals = APIRouter(
    tags=["deployer"], dependencies=[Depends(scoped(read=MODELS_READ, write=DEPLOY_APPROVE))]
)
policy_admin = Depends(require(ADMIN))
Approver = Annotated[Caller, Depends(require(DEPLOY_APPROVE))]


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.startswith("d") or not cursor[1:].isdigit():
        raise InvalidInput(f"cursor {cursor!r} is not one this API returned", field="cursor")
    return int(cursor[1:])


def _answer(
    outcome: RequestOutcome, deployer: Deployer, uow: WriteUow, response: Response
) -> DeploymentOut | ProblemResponse:
    if outcome.denial is not None:
        denial = outcome.denial
        return problem_response(
            denial.status,
            title=denial.title,
            detail=denial.detail,
            problem_type=denial.problem_type,
            **denial.extensions,
        )
    assert outcome.deployment is not None
    response.status_code = 201 if outcome.created else 200
    if outcome.created:
        uow.after_commit(deployer.wake)
    decision = None if outcome.decision is None else DecisionOut.of(outcome.decision)
    return DeploymentOut.of(outcome.deployment, decision=decision)


# -- deployments ------------------------------------------------------------------------


@router.post(
    "/deployments",
    status_code=201,
    response_model=DeploymentOut,
    responses={200: {"description": "the same request again: the existing deployment"}},
)
async def request_deployment(
    body: DeploymentIn,
    team: Team,
    who: Principal,
    deployer: Deployer,
    uow: WriteUow,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> DeploymentOut | ProblemResponse:
    """Ask for a deployment (201), or get the one the same request made before (200);
    409 `deployment-denied` listing every reason the policy refuses it."""
    ask = DeploymentAsk(
        team=team,
        model=body.model,
        version=body.version or 0,
        environment=body.environment.value,
        requested_by=who,
        reason=body.reason,
        idempotency_key=idempotency_key,
    )
    service = deployer.service(uow)
    if body.alias is not None:
        outcome = await service.request_alias(team, body.model, body.alias, ask)
    else:
        outcome = await service.request(ask)
    return _answer(outcome, deployer, uow, response)


@router.get("/deployments")
async def list_deployments(
    team: Team,
    deployer: Deployer,
    uow: ReadUow,
    model: Annotated[
        str | None, Query(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)
    ] = None,
    environment: Environment | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Query(max_length=32)] = None,
) -> DeploymentPage:
    """The team's deployments, newest first."""
    found = await deployer.service(uow).list_deployments(
        DeploymentFilter(team, model, None if environment is None else environment.value),
        limit=limit + 1,
        before_seq=_cursor(cursor),
    )
    page = found[:limit]
    return DeploymentPage(
        deployments=[DeploymentOut.of(d) for _, d in page],
        next_cursor=f"d{page[-1][0]}" if len(found) > limit and page else None,
    )


@router.get("/deployments/{deployment_id}")
async def get_deployment(
    deployment_id: UUID, team: Team, deployer: Deployer, uow: ReadUow
) -> DeploymentOut:
    """One deployment with its history: each phase change and decision, and who caused it."""
    return DeploymentOut.of_view(await deployer.service(uow).get(team, deployment_id))


@router.get("/deployments/{deployment_id}/approvals")
async def list_approvals(
    deployment_id: UUID, team: Team, deployer: Deployer, uow: ReadUow
) -> list[ApprovalOut]:
    view = await deployer.service(uow).get(team, deployment_id)
    return [ApprovalOut(principal=a.principal, approved_at=at) for a, at in view.approvals]


@approvals.post("/deployments/{deployment_id}/approvals")
async def approve(
    deployment_id: UUID, team: Team, caller: Approver, deployer: Deployer, uow: WriteUow
) -> DeploymentOut:
    """Approve (never the requester; `deploy:approve` needed); queued once the policy
    allows it."""
    view = await deployer.service(uow).approve(team, deployment_id, caller)
    uow.after_commit(deployer.wake)
    return DeploymentOut.of_view(view)


@router.post("/deployments/{deployment_id}/promote", response_model=DeploymentOut)
async def promote(
    deployment_id: UUID,
    team: Team,
    who: Principal,
    deployer: Deployer,
    uow: WriteUow,
    response: Response,
) -> DeploymentOut | ProblemResponse:
    """Ask the same version for the next environment, through that environment's rules."""
    outcome = await deployer.service(uow).promote(team, deployment_id, who)
    return _answer(outcome, deployer, uow, response)


@router.post("/deployments/{deployment_id}/rollback", status_code=202)
async def rollback(
    deployment_id: UUID, team: Team, who: Principal, deployer: Deployer, uow: WriteUow
) -> DeploymentOut:
    """Queue a revert commit of the deployment's change (works under Argo CD auto-sync)."""
    view = await deployer.service(uow).rollback(team, deployment_id, who)
    uow.after_commit(deployer.wake)
    return DeploymentOut.of_view(view)


# -- policies ---------------------------------------------------------------------------


@router.get("/policies")
async def get_policy(team: Team, deployer: Deployer, uow: ReadUow, response: Response) -> PolicyOut:
    """The team's environments in promotion order and their rules (version 0: defaults)."""
    view = await deployer.service(uow).policies.current(team)
    response.headers["ETag"] = view.etag
    return PolicyOut.of(view)


@router.put("/policies", dependencies=[policy_admin])
async def put_policy(
    body: PolicyIn,
    team: Team,
    who: Principal,
    deployer: Deployer,
    uow: WriteUow,
    response: Response,
    if_match: IfMatch = None,
) -> PolicyOut:
    """Replace the environments (the next version); `If-Match` → 412 when stale."""
    view = await deployer.service(uow).policies.replace_environments(
        team, body.to_domain(team), by=who, if_match=if_match
    )
    response.headers["ETag"] = view.etag
    return PolicyOut.of(view)


@router.get("/policies/{environment}")
async def get_rules(
    environment: Environment, team: Team, deployer: Deployer, uow: ReadUow, response: Response
) -> RulesModel:
    view = await deployer.service(uow).policies.current(team)
    response.headers["ETag"] = view.etag
    return RulesModel.of(view.policy.environments.get(environment.value).rules)


@router.put("/policies/{environment}", dependencies=[policy_admin])
async def put_rules(
    environment: Environment,
    body: RulesModel,
    team: Team,
    who: Principal,
    deployer: Deployer,
    uow: WriteUow,
    response: Response,
    if_match: IfMatch = None,
) -> RulesModel:
    """Change one environment's rules (the next version of the team's policy)."""
    view = await deployer.service(uow).policies.change_rules(
        team, environment.value, body.to_domain(), by=who, if_match=if_match
    )
    response.headers["ETag"] = view.etag
    return RulesModel.of(view.policy.environments.get(environment.value).rules)
