"""`WWW-Authenticate` challenges (RFC 9110 §11.6.1), as registries send them on 401.

Distribution, Harbor and Docker Hub send `Bearer realm="...",service="...",scope="..."`;
an htpasswd registry sends `Basic realm="..."`. One header may carry several
challenges, and parameter values may be quoted strings with escapes and commas
(`scope="repository:a:pull,push"`), so this is a small tokenizer, not a split.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SPACE = re.compile(r"[ \t]*")


@dataclass(frozen=True)
class AuthChallenge:
    """One challenge: its scheme in lower case and its parameters (names lower case)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes asked for; several are separated by spaces in one `scope`."""
        return tuple(self.params.get("scope", "").split())


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The quoted string opening at `start` (a '"') and the index after its close."""
    value = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            value.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(value), i + 1
        value.append(char)
        i += 1
    return "".join(value), i  # unterminated: take what is there


def _parse_header(text: str) -> list[AuthChallenge]:
    challenges: list[AuthChallenge] = []
    current: AuthChallenge | None = None
    i = 0
    while i < len(text):
        i = _SPACE.match(text, i).end()  # type: ignore[union-attr]
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        token = _TOKEN.match(text, i)
        if token is None:
            i += 1  # a stray character: skip rather than give up on the header
            continue
        name, after = token.group(), token.end()
        after_space = _SPACE.match(text, after).end()  # type: ignore[union-attr]
        if after_space < len(text) and text[after_space] == "=":
            # `name=value` continues the current challenge (token68 values end in '=').
            value_start = _SPACE.match(text, after_space + 1).end()  # type: ignore[union-attr]
            if value_start < len(text) and text[value_start] == '"':
                value, i = _quoted(text, value_start)
            else:
                value_token = _TOKEN.match(text, value_start)
                value = value_token.group() if value_token else ""
                i = value_token.end() if value_token else value_start
            if current is not None:
                current.params[name.lower()] = value
            continue
        current = AuthChallenge(scheme=name.lower())
        challenges.append(current)
        i = after
    return challenges


def parse_challenges(headers: Iterable[str]) -> list[AuthChallenge]:
    """Every challenge in the given `WWW-Authenticate` header values, in order."""
    challenges: list[AuthChallenge] = []
    for header in headers:
        challenges.extend(_parse_header(header))
    return challenges
