"""The deployer's use cases on one unit of work; none commits (the route's or message's
scope does, or the job worker's own unit of work).

A request is decided by the foundations' `evaluate` with the facts the deployer keeps
(the digest's latest scan, the version's phase in the previous environment, approvals,
lineage, the time). Allowed: a pending deployment queued for the job worker. Missing
only approvals: a pending deployment waiting for them. Anything else: a denial listing
every reason. Every decision is stored with the policy version it was made under;
every phase change is a history entry naming who caused it and a
`deployment.status_changed` event in the outbox.
"""

from mlplane_deployer.service.base import (
    DEPLOYER,
    DeploymentView,
    JobPlan,
    RequestOutcome,
    utc_now,
)
from mlplane_deployer.service.deployments import DeploymentService

__all__ = [
    "DEPLOYER",
    "DeploymentService",
    "DeploymentView",
    "JobPlan",
    "RequestOutcome",
    "utc_now",
]
