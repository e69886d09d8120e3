"""HTTP request and response models of the API-key routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from mlplane_contracts.types import DNS_LABEL_PATTERN
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from mlplane_gateway.auth.principals import Scope
from mlplane_gateway.keys.domain import ApiKey

TeamName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team: TeamName
    # No control characters: PostgreSQL text refuses NUL, and names end up in logs.
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    expires_at: AwareDatetime | None = None
    """Unset: the key lives until revoked."""


class KeyOut(BaseModel):
    id: str
    team: str
    name: str
    scopes: list[Scope]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(
            id=key.id,
            team=key.team,
            name=key.name,
            scopes=sorted(key.scopes),
            created_by=key.created_by,
            created_at=key.created_at,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            last_used_at=key.last_used_at,
        )


class KeyCreated(KeyOut):
    key: str
    """The key itself: shown this once, stored only as a keyed hash."""


class KeyList(BaseModel):
    keys: list[KeyOut]
