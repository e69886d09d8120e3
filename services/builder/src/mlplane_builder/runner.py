"""The pipeline wired to one hosted builder's clients: target registry or layout, base
image registries, artifact storage. Built in the plug-in's lifespan, closed after it.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType

import httpx
from mlplane_oci import OciClient, RetryPolicy

from mlplane_builder.artifact_source import ArtifactSource
from mlplane_builder.domain import Build, image_repository
from mlplane_builder.image.layout import OciLayout
from mlplane_builder.pipeline import BuildPlan, BuildResult, build_image
from mlplane_builder.settings import BuilderSettings
from mlplane_builder.targets import ImageTarget, LayoutTarget, RegistryTarget

LAYOUTS_DIR = "images"


class BuildRunner:
    """Runs builds with this builder's settings. `async with BuildRunner(...) as runner:`.

    `data_dir` is the service's own directory: OCI layouts go to `<data_dir>/images/
    <repository>` in embedded mode. `platform_data_dir` is the default root local
    `file://` artifacts must be under. `transport` (tests) carries every registry
    request, e.g. to count them.
    """

    def __init__(
        self,
        settings: BuilderSettings,
        *,
        data_dir: Path,
        platform_data_dir: Path,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.layouts_root = data_dir / LAYOUTS_DIR
        self._transport = transport
        self._stack = AsyncExitStack()
        self._clients: dict[str, OciClient] = {}
        self._clients_lock = asyncio.Lock()
        self._target: OciClient | None = None
        # The embedded registry's local-disk objects (`<data>/registry/artifacts/objects`).
        local_root = settings.local_artifact_root or str(
            platform_data_dir / "registry" / "artifacts" / "objects"
        )
        self.artifacts = ArtifactSource(
            local_root=Path(local_root),
            registry_store=settings.registry_artifact_store,
            team_locations=settings.team_artifact_locations,
            s3_endpoint_url=None
            if settings.s3_endpoint_url is None
            else str(settings.s3_endpoint_url).rstrip("/"),
            s3_region=settings.s3_region,
            s3_access_key=None
            if settings.s3_access_key is None
            else settings.s3_access_key.get_secret_value(),
            s3_secret_key=None
            if settings.s3_secret_key is None
            else settings.s3_secret_key.get_secret_value(),
            tracking_uri=None
            if settings.mlflow_tracking_uri is None
            else str(settings.mlflow_tracking_uri).rstrip("/"),
            tracking_token=None
            if settings.mlflow_tracking_token is None
            else settings.mlflow_tracking_token.get_secret_value(),
            tracking_locations=settings.mlflow_tracking_locations,
            max_files=settings.max_artifact_files,
        )

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.settings.registry_retry_attempts,
            base_delay_s=self.settings.registry_retry_delay_s,
        )

    @property
    def target_client(self) -> OciClient | None:
        """The target registry's client (None in embedded mode); for tests' request counts."""
        return self._target

    async def __aenter__(self) -> BuildRunner:
        await self._stack.enter_async_context(self.artifacts)
        settings = self.settings
        base_url, host = settings.registry_base_url, settings.registry_host()
        if base_url is not None and host is not None:
            password = settings.registry_password
            self._target = await self._stack.enter_async_context(
                OciClient(
                    base_url,
                    username=settings.registry_username,
                    password=None if password is None else password.get_secret_value(),
                    retry=self.retry,
                    timeout_s=settings.registry_timeout_s,
                    transport=self._transport,
                )
            )
            self._clients[host] = self._target
        else:
            self.layouts_root.mkdir(parents=True, exist_ok=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._clients.clear()
        self._target = None
        await self._stack.aclose()

    async def client_for(self, host: str) -> OciClient:
        """The client of registry `host` (the target's, with its credentials, when it is
        the target; anonymous otherwise), made once."""
        async with self._clients_lock:
            client = self._clients.get(host)
            if client is None:
                client = await self._stack.enter_async_context(
                    OciClient(
                        f"{self.settings.registry_scheme(host)}://{host}",
                        retry=self.retry,
                        timeout_s=self.settings.registry_timeout_s,
                        transport=self._transport,
                    )
                )
                self._clients[host] = client
            return client

    def target_for(self, build: Build) -> ImageTarget:
        request = build.request
        repository = image_repository(
            self.settings.repository_template, request.team, request.model
        )
        host = self.settings.registry_host()
        if self._target is not None and host is not None:
            return RegistryTarget(self._target, host, repository)
        return LayoutTarget(OciLayout(self.layouts_root / repository), repository)

    async def __call__(self, build: Build) -> BuildResult:
        """Build `build`'s image. Raises BuildFailure."""
        settings = self.settings
        plan = BuildPlan(
            target=self.target_for(build),
            target_registry=settings.registry_host(),
            base_reference=settings.base_image_for(build.request.framework),
            compression_level=settings.compression_level,
            chunk_size=settings.upload_chunk_size,
            stream_upload=settings.stream_uploads,
            layer_chunk_size=settings.layer_chunk_size,
        )
        return await build_image(
            build.request, plan, artifacts=self.artifacts, base_client_for=self.client_for
        )
