"""HTTP models of the ingress routes: webhooks, CloudEvents, webhook secrets, deployment
requests."""

from __future__ import annotations

from uuid import UUID

from mlplane_contracts.events import Environment
from mlplane_contracts.types import DnsLabel, VersionNumber
from pydantic import BaseModel, ConfigDict, Field

from mlplane_gateway.ingress.service import DeploymentAsked, Received


class WebhookSecretOut(BaseModel):
    team: str
    secret: str
    """Shown this once: set it as the GitHub webhook secret or the GitLab secret token."""


class ReceivedOut(BaseModel):
    status: str
    event_id: str | None = None
    reason: str | None = None

    @classmethod
    def of(cls, received: Received) -> ReceivedOut:
        return cls(
            status=received.outcome.value, event_id=received.event_id, reason=received.reason
        )


class PostedEventOut(ReceivedOut):
    id: str
    source: str


class EventsOut(BaseModel):
    events: list[PostedEventOut]


class DeploymentRequestIn(BaseModel):
    """Deploy `version` of `model` to `environment`."""

    model_config = ConfigDict(extra="forbid")

    model: DnsLabel
    version: VersionNumber
    environment: Environment
    reason: str | None = Field(
        default=None, min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$"
    )


class DeploymentRequestOut(ReceivedOut):
    deployment_id: UUID
    location: str
    """Where the deployment answers once the deployer has taken it (404 until then, and
    for good when the policy refused it: the `rejected` status change says why)."""

    @classmethod
    def of_request(cls, asked: DeploymentAsked) -> DeploymentRequestOut:
        return cls(
            **ReceivedOut.of(asked.received).model_dump(),
            deployment_id=asked.deployment_id,
            location=f"/v1/deployer/deployments/{asked.deployment_id}",
        )
