"""MLflow's model-registry webhooks API (MLflow 3.3+), served by the gateway's subscriptions.

`/api/2.0/mlflow/webhooks` (and under `/ajax-api/`): create, list, get, update,
delete and test, as `MlflowClient.create_webhook` & co. call them, with the caller's
API key as `MLFLOW_TRACKING_TOKEN` (scope `events:subscribe`). A webhook is a
subscription of the caller's team delivering in MLflow's format
(`subscriptions.mlflow`): durable, signed, retried with backoff, dead letters
visible in `/v1/subscriptions/<id>/deliveries`, rather than MLflow's in-process,
best-effort send. Errors are MLflow's `{"error_code", "message"}`. These routes come
before the facade's, which forwards the rest of `/api/2.0/mlflow/` to the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from mlplane_runtime.deps import ReadUow, WriteUow
from mlplane_runtime.errors import MlplaneError
from pydantic import BaseModel, ConfigDict, Field

from mlplane_gateway.deps import Gateway, Subscriber
from mlplane_gateway.facade.errors import render_mlflow_problem
from mlplane_gateway.subscriptions.domain import Subscription
from mlplane_gateway.subscriptions.mlflow import event_name
from mlplane_gateway.subscriptions.mlflow_service import (
    MAX_EVENTS,
    MlflowWebhookService,
    WebhookChange,
)
from mlplane_gateway.subscriptions.mlflow_test_delivery import send_test
from mlplane_gateway.subscriptions.service import SubscriptionNotFound

PREFIXES = ("/api/2.0/mlflow/webhooks", "/ajax-api/2.0/mlflow/webhooks")
WebhookId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^sub_[0-9a-f]+$")]
TEST_TIMEOUT_S = 10.0
MAX_PAGE = 1000


class Event(BaseModel):
    model_config = ConfigDict(extra="ignore")

    entity: str = Field(min_length=1, max_length=64)
    action: str = Field(min_length=1, max_length=64)


class WebhookBody(BaseModel):
    """MLflow's CreateWebhook / UpdateWebhook (unknown fields ignored)."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, max_length=256)
    url: str | None = Field(default=None, max_length=2048)
    events: list[Event] | None = Field(default=None, max_length=MAX_EVENTS)
    description: str | None = Field(default=None, max_length=1000)
    secret: str | None = Field(default=None, max_length=1000)
    status: str | None = Field(default=None, pattern=r"^(ACTIVE|DISABLED)$")

    def change(self) -> WebhookChange:
        return WebhookChange(
            name=self.name,
            url=self.url,
            events=None if self.events is None else [(e.entity, e.action) for e in self.events],
            description=self.description,
            secret=self.secret,
            active=None if self.status is None else self.status == "ACTIVE",
        )


class TestBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event: Event | None = None


def webhook_json(webhook: Subscription) -> dict[str, Any]:
    """A webhook as MLflow's `Webhook` message (enums by name, as its client parses them)."""
    updated = webhook.updated_at or webhook.created_at
    return {
        "webhook_id": webhook.id,
        "name": webhook.name or "",
        "description": webhook.description or "",
        "url": webhook.sink_url,
        "events": [
            {"entity": name.partition(".")[0].upper(), "action": name.partition(".")[2].upper()}
            for name in webhook.mlflow_events
        ],
        "status": "DISABLED" if webhook.disabled else "ACTIVE",
        "creation_timestamp": int(webhook.created_at.timestamp() * 1000),
        "last_updated_timestamp": int(updated.timestamp() * 1000),
    }


def _service(gateway: Gateway, uow: Any) -> MlflowWebhookService:
    return MlflowWebhookService(
        uow, gateway.subscriptions.tables, max_per_team=gateway.subscriptions.max_per_team
    )


class MlflowWebhookRoute(APIRoute):
    """A route whose errors (auth, scope, validation, the use cases') MLflow's client reads:
    problem+json that also carries `error_code` and `message`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handle(request)
            except MlplaneError as exc:
                headers: dict[str, str] | None = getattr(exc, "headers", None)
                return render_mlflow_problem(
                    exc.status,
                    title=exc.title,
                    detail=exc.detail,
                    problem_type=exc.problem_type,
                    instance=request.url.path,
                    headers=dict(headers) if headers else None,
                    extensions=dict(exc.extensions),
                )
            except RequestValidationError as exc:
                where = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
                    for e in exc.errors()
                )
                return render_mlflow_problem(
                    400,
                    title="Invalid request",
                    detail=f"Invalid request: {where}",
                    problem_type="about:blank",
                    instance=request.url.path,
                )
            except HTTPException as exc:
                return render_mlflow_problem(
                    exc.status_code,
                    title=None,
                    detail=exc.detail if isinstance(exc.detail, str) else None,
                    problem_type="about:blank",
                    instance=request.url.path,
                    headers=dict(exc.headers) if exc.headers else None,
                )

        return run


routes = APIRouter(tags=["mlflow-webhooks"], route_class=MlflowWebhookRoute)


@routes.post("")
async def create_webhook(
    body: WebhookBody, actor: Subscriber, gateway: Gateway, uow: WriteUow
) -> dict[str, Any]:
    """Create a webhook of the caller's team (MLflow's CreateWebhook)."""
    webhook = await _service(gateway, uow).create(
        actor, body.change(), gateway.subscriptions.sink_checker, datetime.now(UTC)
    )
    return {"webhook": webhook_json(webhook)}


@routes.get("")
async def list_webhooks(
    actor: Subscriber,
    gateway: Gateway,
    uow: ReadUow,
    max_results: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    page_token: Annotated[str | None, Query(max_length=20, pattern=r"^[0-9]+$")] = None,
) -> dict[str, Any]:
    """The team's webhooks, newest first, a page at a time."""
    found = await _service(gateway, uow).of_team(actor)
    start = int(page_token or 0)
    page = found[start : start + max_results]
    answer: dict[str, Any] = {"webhooks": [webhook_json(w) for w in page]}
    if start + max_results < len(found):
        answer["next_page_token"] = str(start + max_results)
    return answer


@routes.get("/{webhook_id}")
async def get_webhook(
    webhook_id: WebhookId, actor: Subscriber, gateway: Gateway, uow: ReadUow
) -> dict[str, Any]:
    return {"webhook": webhook_json(await _service(gateway, uow).get(actor, webhook_id))}


@routes.patch("/{webhook_id}")
async def update_webhook(
    webhook_id: WebhookId, body: WebhookBody, actor: Subscriber, gateway: Gateway, uow: WriteUow
) -> dict[str, Any]:
    webhook = await _service(gateway, uow).update(
        actor, webhook_id, body.change(), gateway.subscriptions.sink_checker, datetime.now(UTC)
    )
    return {"webhook": webhook_json(webhook)}


@routes.delete("/{webhook_id}")
async def delete_webhook(
    webhook_id: WebhookId, actor: Subscriber, gateway: Gateway, uow: WriteUow
) -> dict[str, Any]:
    await _service(gateway, uow).delete(actor, webhook_id)
    return {}


@routes.post("/{webhook_id}/test")
async def test_webhook(
    webhook_id: WebhookId, body: TestBody, actor: Subscriber, gateway: Gateway, uow: ReadUow
) -> dict[str, Any]:
    """Send one example event now (the first of the webhook's unless one is named)."""
    webhook = await _service(gateway, uow).get(actor, webhook_id)
    if body.event is not None:
        chosen = event_name(body.event.entity, body.event.action)
    elif webhook.mlflow_events:
        chosen = webhook.mlflow_events[0]
    else:
        raise SubscriptionNotFound(f"Webhook with ID {webhook_id} has no events.")
    result = await send_test(
        gateway.subscriptions.client,
        webhook,
        chosen,
        gateway.subscriptions.sink_checker,
        TEST_TIMEOUT_S,
    )
    answer: dict[str, Any] = {"success": result.success}
    if result.response_status is not None:
        answer["response_status"] = result.response_status
    if result.response_body is not None:
        answer["response_body"] = result.response_body
    if result.error_message is not None:
        answer["error_message"] = result.error_message
    return {"result": answer}


router = APIRouter()
"""The webhook routes under both of MLflow's prefixes."""
for _prefix in PREFIXES:
    router.include_router(routes, prefix=_prefix)
