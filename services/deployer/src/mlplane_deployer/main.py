"""The deployer as a plug-in of the mlplane platform: `plugin` is its entry point,
`build` its one composition root (the host calls it once per hosting; tests too).

A hosting is its settings, the GitOps repository (its working clone under the data
directory; the remote a bare repository there too when none is configured), the
deployment worker (a `ServiceWorker`) and the cluster seam: Argo CD when the settings
name a cluster (`argocd.sync.ArgoCdSync`, its follower a second `ServiceWorker`), else
none and deployments stop at `committed`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import datetime
from pathlib import Path

from mlplane_runtime.service import ServiceContext, ServiceParts, ServicePlugin, ServiceWorker
from mlplane_runtime.settings import load_settings
from mlplane_runtime.uow import UnitOfWork

from mlplane_deployer import api, handlers
from mlplane_deployer.argocd.sync import ArgoCdSync
from mlplane_deployer.cluster import ClusterSync
from mlplane_deployer.deps import HostedDeployer
from mlplane_deployer.gitops.embedded import ensure_bare_repository
from mlplane_deployer.gitops.repository import GitOpsRepository
from mlplane_deployer.manifest_scan_target import manifest_scan_gate
from mlplane_deployer.service import DeploymentService, utc_now
from mlplane_deployer.settings import DeployerSettings
from mlplane_deployer.store import SCHEMA, DeployerTables, define_tables
from mlplane_deployer.worker import DeploymentWorker

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
EMBEDDED_REMOTE = "gitops.git"
WORKDIR = "gitops"

_log = logging.getLogger("mlplane.deployer")


def build(
    context: ServiceContext,
    tables: DeployerTables,
    settings: DeployerSettings | None = None,
    *,
    cluster: ClusterSync | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> ServiceParts:
    """One hosted deployer on `tables`: settings from `MLPLANE_DEPLOYER_*` unless given.

    `cluster` is called after each pushed deployment; unset, it is Argo CD when the
    settings name a cluster (`kubeconfig`, `kube_in_cluster` or `kube_api_url`), else
    none and a deployment stops at `committed`. `clock` is the use cases' time.
    Connects to nothing (the lifespan creates the embedded bare repository and the
    Kubernetes client). Raises InvalidInput naming each bad variable.
    """
    settings = settings or load_settings(DeployerSettings)
    repository = GitOpsRepository(
        remote=settings.remote_for(context.data_dir / EMBEDDED_REMOTE),
        # git runs in the working clone: every local path must be absolute.
        workdir=(settings.gitops_workdir or context.data_dir / WORKDIR).resolve(),
        branch=settings.gitops_branch,
        credentials=settings.git_credentials(),
        max_attempts=settings.gitops_push_attempts,
    )

    argocd: ArgoCdSync | None = None
    if cluster is None and settings.cluster_configured:
        argocd = ArgoCdSync(
            settings,
            context.uow_factory,
            lambda uow: service_of(uow),
            repository,
            wake=lambda: worker.wake(),
        )
        cluster = argocd
    configured = cluster is not None

    def service_of(uow: UnitOfWork) -> DeploymentService:
        return DeploymentService(uow, tables, clock=clock, cluster_configured=configured)

    worker = DeploymentWorker(
        context.name,
        context.uow_factory,
        tables,
        service_of,
        settings,
        repository,
        cluster,
        manifest_scan=manifest_scan_gate(settings, context),
    )
    workers = [ServiceWorker("deployment-worker", worker.run)]
    if argocd is not None:
        workers.append(ServiceWorker("argocd-follower", argocd.run))
    return ServiceParts(
        handlers=handlers.event_handlers(service_of, worker.wake),
        routers=[api.router, api.approvals],
        workers=workers,
        lifespan=_opened(settings, repository, cluster, argocd.opened() if argocd else None),
        resources=HostedDeployer(tables, settings, service_of, worker, argocd),
    )


@asynccontextmanager
async def _opened(
    settings: DeployerSettings,
    repository: GitOpsRepository,
    cluster: ClusterSync | None,
    kubernetes: AbstractAsyncContextManager[None] | None,
) -> AsyncIterator[None]:
    """The embedded remote, made on the first start, and the Kubernetes client of the
    Argo CD sync (its workers run inside)."""
    if settings.embedded:
        await ensure_bare_repository(Path(repository.remote), settings.gitops_branch)
    async with AsyncExitStack() as stack:
        if kubernetes is not None:
            await stack.enter_async_context(kubernetes)
        _log.info(
            "deployer started: GitOps %s (branch %s), %s",
            f"embedded at {repository.remote}" if settings.embedded else "remote configured",
            settings.gitops_branch,
            "no cluster: deployments stop at committed"
            if cluster is None
            else f"cluster sync on (Argo CD in {settings.argocd_namespace})",
        )
        yield


def make_plugin(name: str = "deployer", schema: str = SCHEMA) -> ServicePlugin:
    """The deployer called `name`, keeping its tables in `schema` (tests use throwaway ones).

    Raises ValueError for a name or schema the bus or database would refuse; a bad
    `MLPLANE_DEPLOYER_*` setting fails the host's start (`InvalidInput` naming it).
    """
    tables = define_tables(schema)
    return ServicePlugin(
        name=name,
        schema=schema,
        metadata=tables.metadata,
        migrations=MIGRATIONS,
        build=lambda context: build(context, tables),
    )


plugin = make_plugin()
