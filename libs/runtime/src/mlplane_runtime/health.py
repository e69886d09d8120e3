"""Liveness and readiness probes: `/healthz` and `/readyz`.

Liveness says only that the process serves HTTP; restarting it would not fix a
database that is down, so dependencies are checked by readiness alone, which takes
the instance out of load balancing until they answer again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from mlplane_runtime.errors import PROBLEM_BASE_URI
from mlplane_runtime.problem import problem_response

ReadinessCheck = Callable[[], Awaitable[bool]]
"""Returns True when the dependency it checks answers; False or raising means not ready."""

CheckOutcome = Literal["ok", "failed", "error", "timeout"]

NOT_READY_PROBLEM_TYPE = f"{PROBLEM_BASE_URI}/not-ready"
DEFAULT_CHECK_TIMEOUT_S = 2.0

_log = logging.getLogger("mlplane.health")


async def run_readiness_checks(
    checks: Mapping[str, ReadinessCheck], timeout_s: float = DEFAULT_CHECK_TIMEOUT_S
) -> dict[str, CheckOutcome]:
    """Run every check concurrently, each bounded by `timeout_s`; never raises.

    Each name maps to `ok`, `failed` (returned False), `error` (raised) or
    `timeout` (did not finish in time and was cancelled).
    """
    names = list(checks)
    outcomes = await asyncio.gather(*(_run_one(n, checks[n], timeout_s) for n in names))
    return dict(zip(names, outcomes, strict=True))


async def _run_one(name: str, check: ReadinessCheck, timeout_s: float) -> CheckOutcome:
    try:
        async with asyncio.timeout(timeout_s):
            ready = await check()
    except TimeoutError:
        _log.warning("readiness check %s timed out after %ss", name, timeout_s)
        return "timeout"
    except Exception as exc:
        _log.warning("readiness check %s raised %s", name, type(exc).__name__, exc_info=exc)
        return "error"
    return "ok" if ready is True else "failed"


def health_router(
    readiness: Mapping[str, ReadinessCheck],
    *,
    check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
) -> APIRouter:
    """Routes `GET /healthz` and `GET /readyz`.

    `/healthz` answers 200 whenever the process serves. `/readyz` runs the checks
    in `readiness` (read at each request, so a lifespan may add checks to a dict
    it was given) and answers 200 `{"status": "ready", "checks": {...}}`, or 503
    problem+json whose `detail` and `failing` name every failing check.
    """
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness: the process serves HTTP")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: every dependency answers",
        responses={503: {"description": "A dependency does not answer"}},
    )
    async def readyz() -> JSONResponse:
        outcomes = await run_readiness_checks(readiness, check_timeout_s)
        failing = sorted(name for name, outcome in outcomes.items() if outcome != "ok")
        if failing:
            return problem_response(
                503,
                title="Not ready",
                detail=f"Failing readiness checks: {', '.join(failing)}.",
                problem_type=NOT_READY_PROBLEM_TYPE,
                instance="/readyz",
                failing=failing,
                checks=outcomes,
            )
        body: dict[str, Any] = {"status": "ready", "checks": outcomes}
        return JSONResponse(body)

    return router
