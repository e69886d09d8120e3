"""What a rendering takes: one model version (by digest) in one environment.

Everything here is checked when built, so the renderers never see an image by
tag, a canary without a traffic split, or a name Kubernetes would refuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mlplane_deployer.domain.environments import DNS_LABEL, ServingKind
from mlplane_deployer.domain.errors import InvalidImageReference, InvalidRenderInput

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# registry[:port]/path..., lowercase path components as the OCI distribution spec has them.
REPOSITORY = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
# "-canary" is appended to workload names; Service names are DNS-1035 labels of ≤ 63.
MAX_MODEL_NAME = 63 - len("-canary")


@dataclass(frozen=True, slots=True)
class ImageByDigest:
    """An image named by its content: `repository@sha256:<hex>`, never by a tag."""

    repository: str
    digest: str

    def __post_init__(self) -> None:
        """Raises `InvalidImageReference` for a bad repository or digest."""
        if not REPOSITORY.match(self.repository):
            raise InvalidImageReference(f"{self.repository!r} is not an image repository")
        if not DIGEST.match(self.digest):
            raise InvalidImageReference(f"{self.digest!r} is not a sha256 digest")

    @classmethod
    def parse(cls, reference: str) -> ImageByDigest:
        """Parse `repository@sha256:<hex>`.

        Raises `InvalidImageReference` for a reference by tag (`repo:1.2`), one with
        a tag beside its digest (`repo:1.2@sha256:...`: the tag says something the
        digest may not be), or one with no digest at all.
        """
        repository, at, digest = reference.partition("@")
        if not at:
            raise InvalidImageReference(
                f"{reference!r} names no digest; images deploy by digest only", image=reference
            )
        last = repository.rsplit("/", 1)[-1]
        if ":" in last:
            raise InvalidImageReference(
                f"{reference!r} carries a tag; images deploy by digest only", image=reference
            )
        return cls(repository, digest)

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.digest}"


@dataclass(frozen=True, slots=True)
class Workload:
    """One version of the model, as the image that serves it."""

    version: int
    image: ImageByDigest

    def __post_init__(self) -> None:
        """Raises `InvalidRenderInput` for a version below 1."""
        if self.version < 1:
            raise InvalidRenderInput("a model version is 1 or more")


@dataclass(frozen=True, slots=True)
class Canary:
    """The new version takes `weight` percent of traffic; `stable` keeps the rest."""

    stable: Workload
    weight: int

    def __post_init__(self) -> None:
        """Raises `InvalidRenderInput` for a weight outside 1..99 (0 and 100 are no canary)."""
        if not 1 <= self.weight <= 99:
            raise InvalidRenderInput("a canary weight is 1 to 99 percent", field="weight")


@dataclass(frozen=True, slots=True)
class GatewayRef:
    """The Gateway API `Gateway` the model's `HTTPRoute` attaches to."""

    name: str
    namespace: str
    hostname: str | None = None


@dataclass(frozen=True, slots=True)
class Resources:
    cpu_request: str = "250m"
    cpu_limit: str = "1"
    memory_request: str = "512Mi"
    memory_limit: str = "1Gi"

    def __post_init__(self) -> None:
        """Raises `InvalidRenderInput` for a value that is not a Kubernetes quantity."""
        for value in (self.cpu_request, self.cpu_limit, self.memory_request, self.memory_limit):
            if not QUANTITY.match(value):
                raise InvalidRenderInput(f"{value!r} is not a resource quantity")


@dataclass(frozen=True, slots=True)
class RenderSpec:
    """One model and environment to render. `workload` is the version being deployed;
    with a `canary`, it is the canary and `canary.stable` the version it is tried against.
    """

    team: str
    model: str
    environment: str
    workload: Workload
    serving: ServingKind = ServingKind.KUSTOMIZE
    namespace: str | None = None
    port: int = 8080
    resources: Resources = field(default_factory=Resources)
    min_replicas: int = 2
    max_replicas: int = 5
    target_cpu_percent: int = 70
    readiness_path: str = "/health/ready"
    liveness_path: str = "/health/live"
    metrics_path: str = "/metrics"
    canary: Canary | None = None
    gateway: GatewayRef | None = None
    ingress_namespaces: tuple[str, ...] = ("mlplane-gateway",)
    """Namespaces (by name) whose pods may call the model, beside the Gateway's."""
    monitoring_namespace: str = "monitoring"

    def __post_init__(self) -> None:
        """Raises `InvalidRenderInput` for names Kubernetes refuses or impossible numbers."""
        for what, name in (("team", self.team), ("environment", self.environment)):
            if not DNS_LABEL.match(name):
                raise InvalidRenderInput(f"{what} {name!r} is not a DNS label")
        if (
            not DNS_LABEL.match(self.model)
            or len(self.model) > MAX_MODEL_NAME
            or self.model[0].isdigit()
        ):
            raise InvalidRenderInput(
                f"model {self.model!r} is not a DNS-1035 label of at most {MAX_MODEL_NAME}"
            )
        if not DNS_LABEL.match(self.target_namespace):
            raise InvalidRenderInput(f"namespace {self.target_namespace!r} is not a DNS label")
        if not 1 <= self.port <= 65535:
            raise InvalidRenderInput("a port is 1 to 65535")
        if not 1 <= self.min_replicas <= self.max_replicas <= 1000:
            raise InvalidRenderInput("1 ≤ min_replicas ≤ max_replicas ≤ 1000")
        if not 1 <= self.target_cpu_percent <= 100:
            raise InvalidRenderInput("target_cpu_percent is 1 to 100")
        for path in (self.readiness_path, self.liveness_path, self.metrics_path):
            if not path.startswith("/") or any(c.isspace() for c in path):
                raise InvalidRenderInput(f"{path!r} is not an HTTP path")
        if (
            self.canary is not None
            and self.serving is ServingKind.KUSTOMIZE
            and self.gateway is None
        ):
            raise InvalidRenderInput(
                "a canary splits traffic with an HTTPRoute: the environment names no gateway"
            )
        if self.canary is not None and self.canary.stable.version == self.workload.version:
            raise InvalidRenderInput("a canary tries a version against another one")

    @property
    def target_namespace(self) -> str:
        return self.namespace or f"{self.team}-{self.environment}"

    @property
    def directory(self) -> str:
        """Where this model and environment lives in the GitOps repository."""
        return f"teams/{self.team}/{self.model}/{self.environment}"
