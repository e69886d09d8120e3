"""Services the topology names that are not installed yet, and event types no installed
producer emits yet: their contract cases are expected to fail for that reason alone
(strict xfail: once the service lands they pass, pytest reports XPASS as a failure, and
the entry must be removed so the cases count for real)."""

from __future__ import annotations

from mlplane_contracts import events as ev

NOT_YET_INSTALLED: dict[str, str] = {
    # Written in its own branch; remove this entry when services/drift is on main (and
    # give flow.drive a step that makes it emit drift.detected).
    "drift": "the drift service is not on main yet",
}
NOT_YET_EMITTED: dict[str, str] = {
    # The topology names the gateway as its producer, but no gateway route or handler
    # emits it (ingress publishes only ci.run.completed; deployments are asked for
    # through the deployer's own API). Remove this entry once one does.
    ev.DEPLOYMENT_REQUESTED: "no gateway code path emits deployment.requested yet",
}


class NotInstalled(AssertionError):
    """A service of the case is not among the installed plug-ins."""


class NotEmitted(AssertionError):
    """The producer's use cases emitted no event of the case's type."""
