"""What the contract tests know is not there yet: services the topology names that are
not installed, event types no installed producer emits, types a consumer's queue is
bound to without a handler. Their cases are expected to fail for that reason alone
(strict xfail, never a skip: once the gap is closed the case passes, pytest reports the
XPASS as a failure, and the entry must go so the case counts for real)."""

from __future__ import annotations

import pytest

NOT_YET_INSTALLED: dict[str, str] = {}
NOT_YET_EMITTED: dict[str, str] = {}

NOT_YET_HANDLED: dict[tuple[str, str], str] = {}


class NotInstalled(AssertionError):
    """A service of the case is not among the installed plug-ins."""


class NotEmitted(AssertionError):
    """The producer's use cases emitted no event of the case's type."""


class NotHandled(AssertionError):
    """The consumer has no handler for a type its queue is bound to."""


def pending_marks(
    event_type: str | None, services: tuple[str, ...], consumer: str | None = None
) -> list[pytest.MarkDecorator]:
    """The strict xfail a case gets when one of the entries above applies to it, expecting
    exactly the failures those entries stand for; [] when none does. `services`: the
    case's services; `consumer`: the one whose handlers it checks (for every type when
    `event_type` is None)."""
    reasons: list[str] = []
    raises: list[type[AssertionError]] = []
    for service in services:
        if service in NOT_YET_INSTALLED:
            reasons.append(NOT_YET_INSTALLED[service])
            raises.append(NotInstalled)
    if event_type is not None and event_type in NOT_YET_EMITTED:
        reasons.append(NOT_YET_EMITTED[event_type])
        raises.append(NotEmitted)
    for key, reason in NOT_YET_HANDLED.items():
        if key[0] == consumer and event_type in (None, key[1]):
            reasons.append(reason)
            raises.append(NotHandled)
    if not reasons:
        return []
    return [pytest.mark.xfail(strict=True, raises=tuple(raises), reason="; ".join(reasons))]
