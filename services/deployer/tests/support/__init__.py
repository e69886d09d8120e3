"""Specs the render and GitOps tests share; unique names per call."""

from __future__ import annotations

import uuid

from mlplane_deployer.domain.environments import ServingKind
from mlplane_deployer.render.spec import Canary, GatewayRef, ImageByDigest, RenderSpec, Workload

REPOSITORY = "registry.local:5000/acme/fraud"


def digest(seed: str) -> str:
    return "sha256:" + (seed * 64)[:64]


def image(seed: str = "a") -> ImageByDigest:
    return ImageByDigest(REPOSITORY, digest(seed))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def spec(
    *,
    team: str | None = None,
    model: str | None = None,
    environment: str = "dev",
    version: int = 8,
    seed: str = "a",
    canary_weight: int | None = None,
    serving: ServingKind = ServingKind.KUSTOMIZE,
    gateway: bool = False,
) -> RenderSpec:
    canary = Canary(Workload(version - 1, image("b")), canary_weight) if canary_weight else None
    return RenderSpec(
        team=team or unique("t"),
        model=model or unique("m"),
        environment=environment,
        workload=Workload(version, image(seed)),
        serving=serving,
        canary=canary,
        gateway=GatewayRef("public", "gateway", "models.example.com")
        if gateway or (canary and serving is ServingKind.KUSTOMIZE)
        else None,
    )
