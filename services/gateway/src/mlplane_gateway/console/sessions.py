"""Console sessions: an opaque random id in a cookie, the session itself in PostgreSQL.

Why PostgreSQL and not Redis: the gateway always has its schema, sessions are read
once per page (a primary-key lookup), and a session must end the moment its key is
revoked, which the key's row (same database) says. Redis would add a second place
that must agree with the keys table.

The cookie holds only the id (256 random bits); the table holds its SHA-256, so a
read of the table gives no session. The cookie is `HttpOnly`, `SameSite=Strict`,
`Path=/`, with `Max-Age` to the session's expiry, and `Secure` unless the console is
reached over plain http on a loopback address (where no browser would send it).
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from mlplane_gateway.auth.principals import Principal, PrincipalKind, parse_scopes

COOKIE: Final = "mlplane_session"
LIFETIME: Final = timedelta(hours=8)
"""A session lasts at most this long, and never past its key's expiry."""
MAX_COOKIE_CHARS: Final = 128


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    principal: Principal
    key_id: str | None
    """The API key the session was opened with (None for an OIDC sign-in)."""
    csrf_token: str
    expires_at: datetime


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def session_hash(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8")).digest()


def session_expiry(now: datetime, key_expires_at: datetime | None) -> datetime:
    """`LIFETIME` from `now`, cut at the key's own expiry."""
    end = now + LIFETIME
    return end if key_expires_at is None else min(end, key_expires_at)


def key_id_of(principal: Principal) -> str | None:
    """The API key id a key principal names (`apikey:<id>`), else None."""
    if principal.kind is PrincipalKind.API_KEY and principal.id.startswith("apikey:"):
        return principal.id.removeprefix("apikey:")
    return None


def cookie_is_secure(scheme: str, host: str | None) -> bool:
    """False only for plain http to a loopback host (`make run` on 127.0.0.1): a
    `Secure` cookie would never come back there. Behind a TLS proxy the host is not
    loopback, so the cookie is `Secure`."""
    if scheme == "https":
        return True
    name = (host or "").strip("[]").lower()
    if name == "localhost":
        return False
    try:
        return not ipaddress.ip_address(name).is_loopback
    except ValueError:
        return True


class SessionStore:
    """Sessions over one unit of work's session."""

    def __init__(self, db: AsyncSession, table: Table) -> None:
        self._db = db
        self._table = table

    async def create(self, session_id: str, session: ConsoleSession) -> None:
        principal = session.principal
        if principal.team is None:
            raise ValueError("a console session acts for one team")
        await self._db.execute(
            insert(self._table).values(
                id_hash=session_hash(session_id),
                csrf_token=session.csrf_token,
                principal=principal.id,
                kind=principal.kind.value,
                key_id=session.key_id,
                team=principal.team,
                scopes=sorted(scope.value for scope in principal.scopes),
                expires_at=session.expires_at,
            )
        )

    async def get(self, session_id: str, now: datetime) -> ConsoleSession | None:
        """The session, or None when unknown or expired."""
        t = self._table
        row = (
            (
                await self._db.execute(
                    select(t).where(t.c.id_hash == session_hash(session_id), t.c.expires_at > now)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return ConsoleSession(
            principal=Principal(
                kind=PrincipalKind(row["kind"]),
                id=row["principal"],
                team=row["team"],
                scopes=parse_scopes(row["scopes"]),
                expires_at=row["expires_at"],
            ),
            key_id=row["key_id"],
            csrf_token=row["csrf_token"],
            expires_at=row["expires_at"],
        )

    async def delete(self, session_id: str) -> None:
        await self._db.execute(
            delete(self._table).where(self._table.c.id_hash == session_hash(session_id))
        )

    async def delete_expired(self, now: datetime) -> None:
        await self._db.execute(delete(self._table).where(self._table.c.expires_at <= now))
