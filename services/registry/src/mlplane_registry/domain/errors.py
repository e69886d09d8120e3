"""The registry's domain errors and name rules."""

from __future__ import annotations

import re

from mlplane_runtime.errors import Conflict, InvalidInput, NotFound, PreconditionFailed

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
MAX_DNS_LABEL = 63


def check_dns_label(value: str, what: str) -> str:
    """`value` when it is a DNS-1123 label; else `InvalidName` naming `what`."""
    if len(value) > MAX_DNS_LABEL or DNS_LABEL.fullmatch(value) is None:
        raise InvalidName(
            f"{what} {value!r} is not a DNS-1123 label "
            "(lowercase letters, digits and '-', at most 63, starting and ending alphanumeric)",
            field=what,
        )
    return value


# -- errors ---------------------------------------------------------------------------


class InvalidName(InvalidInput):
    """A team, model or alias name that is not a DNS-1123 label."""


class ModelNotFound(NotFound):
    pass


class ModelVersionNotFound(NotFound):
    pass


class AliasNotFound(NotFound):
    pass


class ModelAlreadyExists(Conflict):
    pass


class StaleETag(PreconditionFailed):
    """An `If-Match` that no longer matches: someone else changed the resource first."""


class InvalidTransition(Conflict):
    """A lifecycle fact that contradicts what the version already went through."""
