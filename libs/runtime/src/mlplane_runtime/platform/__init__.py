"""The embedded platform: every installed service in one process (`mlplane up`), or one
service alone (`mlplane serve <name>`), on the infrastructure the settings name."""

from mlplane_runtime.platform.host import Platform, PlatformStartFailed
from mlplane_runtime.platform.hosted_service import HostedService
from mlplane_runtime.platform.http_server import PortUnavailable, bind_http_socket, serve_platform
from mlplane_runtime.platform.workers import run_workers

__all__ = [
    "HostedService",
    "Platform",
    "PlatformStartFailed",
    "PortUnavailable",
    "bind_http_socket",
    "run_workers",
    "serve_platform",
]
