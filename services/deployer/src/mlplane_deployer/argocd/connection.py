"""The Kubernetes API client the deployer's Argo CD adapter talks through.

Built once by the composition root, closed in its lifespan's end.
"""

from __future__ import annotations

from pathlib import Path

from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration


async def kube_api_client(
    *,
    kubeconfig: Path | None = None,
    context: str | None = None,
    host: str | None = None,
) -> ApiClient:
    """An `ApiClient` for `host` (a plain URL: the test stand-in), else `kubeconfig`
    (and `context`), else the in-cluster service account.

    Raises kubernetes-asyncio's `ConfigException` when none of them can be loaded.
    """
    if host is not None:
        configuration = Configuration(host=host)
        return ApiClient(configuration)
    configuration = Configuration()
    if kubeconfig is not None:
        await config.load_kube_config(
            config_file=str(kubeconfig), context=context, client_configuration=configuration
        )
    else:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return ApiClient(configuration)
