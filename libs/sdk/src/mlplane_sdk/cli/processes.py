"""`mlplane up --processes`: every installed service as its own `mlplane serve` process.

The deployed shape without containers: one process per service on the real bus and
database, each on its own port (`ports.port_layout` around the gateway's), the
gateway pointed at each of them, every line a child writes prefixed with its name.

What the processes share is what deployed services share: RabbitMQ (the in-process
bus cannot span processes, so `MLPLANE_AMQP_URL` is required), PostgreSQL (the
configured one, else one embedded server this launcher owns and hands to all), and
the data directory (the dev identity secret, made once here before any child
starts, and the embedded artifact and image stores). The first child to stop on its
own stops the rest: a platform missing a service is not what a person came to see.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx

READY_WITHIN_S = 180.0
STOP_WITHIN_S = 30.0
_FRONTED = ("registry", "builder", "scanner", "deployer", "drift")


class LaunchFailed(Exception):
    """The launcher cannot start, or a service stopped: the message says which and why."""


@dataclass(frozen=True, slots=True)
class ChildPlan:
    """How one service is started: its port and the environment it gets."""

    service: str
    port: int
    environment: Mapping[str, str]

    def url(self, host: str) -> str:
        return f"http://{_url_host(host)}:{self.port}"


def plan_children(
    services: Sequence[str],
    *,
    environment: Mapping[str, str],
    host: str,
    gateway_port: int,
    database_url: str,
) -> list[ChildPlan]:
    """One plan per service: its port, the database, for the gateway every fronted
    service's address and for the deployer the scanner's (unless the environment already
    names them). Pure."""
    from mlplane_runtime.platform.ports import port_layout

    ports = port_layout(services, gateway_port)
    shared = {
        **environment,
        "MLPLANE_HTTP_HOST": host,
        "MLPLANE_DATABASE_URL": database_url,
        "PYTHONUNBUFFERED": "1",
    }
    plans = []
    for service in services:
        child = {**shared, "MLPLANE_HTTP_PORT": str(ports[service])}
        if service == "gateway":
            for fronted in _FRONTED:
                variable = f"MLPLANE_GATEWAY_{fronted.upper()}_URL"
                if fronted in ports and variable not in environment:
                    child[variable] = f"http://{_url_host(host)}:{ports[fronted]}"
        # The deployer scans rendered manifests with the scanner before each commit.
        scanner_url = "MLPLANE_DEPLOYER_SCANNER_URL"
        if service == "deployer" and "scanner" in ports and scanner_url not in environment:
            child[scanner_url] = f"http://{_url_host(host)}:{ports['scanner']}"
        plans.append(ChildPlan(service, ports[service], child))
    return plans


@dataclass
class _Child:
    plan: ChildPlan
    process: asyncio.subprocess.Process
    pumps: list[asyncio.Task[None]] = field(default_factory=list)


class ProcessLauncher:
    """Starts the children, prefixes their output, and stops them all together."""

    def __init__(self, plans: Sequence[ChildPlan], host: str) -> None:
        self._plans = plans
        self._host = host
        self._children: list[_Child] = []
        self._width = max((len(p.service) for p in plans), default=0)

    async def run(self, stop: asyncio.Event) -> None:
        """Start every child, announce once all are ready, return when `stop` is set.

        Raises LaunchFailed when a child stops on its own or is not ready in time
        (the others are stopped first).
        """
        try:
            for plan in self._plans:
                self._children.append(await self._start(plan))
            ready = asyncio.ensure_future(self._wait_ready())
            exited = [asyncio.ensure_future(c.process.wait()) for c in self._children]
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait([ready, stopped, *exited], return_when="FIRST_COMPLETED")
                if ready.done() and not stopped.done():
                    ready.result()
                    self._announce()
                    await asyncio.wait([stopped, *exited], return_when="FIRST_COMPLETED")
                if not stopped.done():
                    raise LaunchFailed(self._who_stopped())
            finally:
                for task in (ready, stopped, *exited):
                    task.cancel()
        finally:
            await self._stop_all()

    async def _start(self, plan: ChildPlan) -> _Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mlplane_sdk",
            "serve",
            plan.service,
            env=dict(plan.environment),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # Its own session: Ctrl+C reaches the launcher only, which stops the
            # children in order instead of each racing to shut down alone.
            start_new_session=True,
        )
        child = _Child(plan, process)
        assert process.stdout is not None
        assert process.stderr is not None
        prefix = f"{plan.service:<{self._width}} | "
        child.pumps = [
            asyncio.create_task(_pump(process.stdout, prefix)),
            asyncio.create_task(_pump(process.stderr, prefix)),
        ]
        return child

    async def _wait_ready(self) -> None:
        deadline = asyncio.get_running_loop().time() + READY_WITHIN_S
        async with httpx.AsyncClient(timeout=5.0) as http:
            for child in self._children:
                url = f"{child.plan.url(self._host)}/readyz"
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get(url)).status_code == 200:
                            break
                    if asyncio.get_running_loop().time() > deadline:
                        raise LaunchFailed(
                            f"{child.plan.service} was not ready within {READY_WITHIN_S:g} s "
                            f"({url}); its log lines above say why"
                        )
                    await asyncio.sleep(0.25)

    def _announce(self) -> None:
        by_service = {c.plan.service: c.plan for c in self._children}
        gateway = by_service.get("gateway")
        others = ", ".join(
            f"{c.plan.service} on :{c.plan.port}"
            for c in self._children
            if c.plan.service != "gateway"
        )
        where = gateway.url(self._host) if gateway is not None else "(no gateway installed)"
        sys.stdout.write(f"mlplane is serving on {where} ({others}; Ctrl+C to stop)\n")
        sys.stdout.flush()

    def _who_stopped(self) -> str:
        for child in self._children:
            code = child.process.returncode
            if code is not None:
                return f"{child.plan.service} stopped with exit code {code}: stopping the others"
        return "a service stopped"

    async def _stop_all(self) -> None:
        for child in self._children:
            if child.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGTERM)
        for child in self._children:
            try:
                await asyncio.wait_for(child.process.wait(), STOP_WITHIN_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    child.process.kill()
                await child.process.wait()
            # Their last lines, written while they stopped, are printed before we return.
            await asyncio.gather(*child.pumps, return_exceptions=True)


async def _pump(stream: asyncio.StreamReader, prefix: str) -> None:
    while line := await stream.readline():
        sys.stdout.write(prefix + line.decode(errors="replace").rstrip("\n") + "\n")
        sys.stdout.flush()


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):  # noqa: S104 (a wildcard bind is reached on loopback)
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def child_environment() -> dict[str, str]:
    """The launcher's environment minus what must differ per child."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in ("MLPLANE_HTTP_PORT", "MLPLANE_HTTP_HOST", "MLPLANE_DATABASE_URL")
    }
