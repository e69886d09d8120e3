"""HTTP response models of the ingress routes: webhooks, CloudEvents, webhook secrets."""

from __future__ import annotations

from pydantic import BaseModel

from mlplane_gateway.ingress.service import Received


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
