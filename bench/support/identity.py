"""The identity the registry answers: what the gateway would sign, for the direct side.

No service trusts a header, so calling `mlplane serve registry` straight needs a token
signed with its identity secret, as the gateway signs them. Tokens live at most 60 s,
so the header is renewed every 20 s during a run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from mlplane_runtime.forwarded_identity import IDENTITY_HEADER
from mlplane_testing.identity import signed_identity

BENCH_IDENTITY_SECRET = "mlplane-bench-identity-secret-0123456789abcdef"
_RENEW_S = 20.0


def identity_environment(team: str) -> dict[str, str]:
    """What a benchmarked server needs: the identity secret, and `s3://models/` as
    the team's artifact location (the benchmark's versions name artifacts there)."""
    return {
        "MLPLANE_IDENTITY_SECRET": BENCH_IDENTITY_SECRET,
        "MLPLANE_REGISTRY_TEAM_ARTIFACT_LOCATIONS": json.dumps({team: ["s3://models/"]}),
    }


class SignedIdentity:
    """`headers()`: a current identity token of `team` for `audience` (renewed every 20 s)."""

    def __init__(self, audience: str, team: str) -> None:
        self.audience = audience
        self.team = team
        self._headers: dict[str, str] = {}
        self._signed_at = float("-inf")

    def __call__(self) -> Mapping[str, str]:
        now = time.monotonic()
        if now - self._signed_at > _RENEW_S:
            token = signed_identity(self.audience, team=self.team, secret=BENCH_IDENTITY_SECRET)
            self._headers = {IDENTITY_HEADER: token}
            self._signed_at = now
        return self._headers
