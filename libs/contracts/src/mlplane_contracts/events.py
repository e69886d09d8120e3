"""The payload (`data`) of every mlplane event type, one model per type.

A type is `io.mlplane.<entity>.<happening>.v<major>`. A version only ever grows
by optional fields; a change that would break a consumer is a new `.vN` type
published beside the old one. Models forbid unknown fields so a producer's typo
fails at the producer, not in some consumer later.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

from mlplane_contracts.envelope import EventPayload, register_payload
from mlplane_contracts.types import (
    ByteSize,
    Count,
    DeploymentId,
    Digest,
    DnsLabel,
    FeatureValue,
    GitCommitSha,
    ImageRepository,
    MediaType,
    Metric,
    MetricKey,
    Name,
    ParamValue,
    Percent,
    Principal,
    ResourceUri,
    Score,
    Sha256Hex,
    Share,
    Text,
    Timestamp,
    VersionNumber,
    WebUrl,
)

CI_RUN_COMPLETED = "io.mlplane.ci.run.completed.v1"
MODEL_VERSION_REGISTERED = "io.mlplane.model.version.registered.v1"
MODEL_ALIAS_CHANGED = "io.mlplane.model.alias.changed.v1"
IMAGE_BUILD_STARTED = "io.mlplane.image.build_started.v1"
IMAGE_BUILT = "io.mlplane.image.built.v1"
IMAGE_BUILD_FAILED = "io.mlplane.image.build_failed.v1"
IMAGE_SCANNED = "io.mlplane.image.scanned.v1"
DEPLOYMENT_REQUESTED = "io.mlplane.deployment.requested.v1"
DEPLOYMENT_STATUS_CHANGED = "io.mlplane.deployment.status_changed.v1"
DRIFT_DETECTED = "io.mlplane.drift.detected.v1"
DRIFT_SAMPLES = "io.mlplane.drift.samples.v1"

MAX_DRIFT_SAMPLES = 10_000
"""The most prediction samples one `drift.samples` event carries (a batch, not a stream)."""
MAX_SAMPLE_FEATURES = 1_000
"""The most features one prediction sample names."""


class _Part(BaseModel):
    """A structured value inside a payload: as strict as the payload itself."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True
    )


# -- vocabulary -------------------------------------------------------------------


class CiProvider(StrEnum):
    GITHUB_ACTIONS = "github_actions"
    GITLAB_CI = "gitlab_ci"
    OTHER = "other"


class CiConclusion(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ModelFramework(StrEnum):
    SKLEARN = "sklearn"
    XGBOOST = "xgboost"
    LIGHTGBM = "lightgbm"
    PYTORCH = "pytorch"
    TENSORFLOW = "tensorflow"
    ONNX = "onnx"
    HUGGINGFACE = "huggingface"
    CUSTOM = "custom"


class BuildBackend(StrEnum):
    """How the builder made the image: appended a layer by the OCI API, or ran a Dockerfile."""

    OCI_APPEND = "oci_append"
    DOCKERFILE = "dockerfile"


class ScanVerdict(StrEnum):
    """`error`: the scan could not run (image unreachable or corrupt); no verdict on its content."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    UNKNOWN = "unknown"


class Environment(StrEnum):
    """Deployment environments, in promotion order."""

    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"


class DeploymentStrategy(StrEnum):
    ROLLING = "rolling"
    CANARY = "canary"


class DeploymentPhase(StrEnum):
    """A deployment's life: requested → rendered → committed → syncing → healthy or failed."""

    PENDING = "pending"
    REJECTED = "rejected"
    RENDERED = "rendered"
    COMMITTED = "committed"
    SYNCING = "syncing"
    PROGRESSING = "progressing"
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAILED = "failed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"


class DriftMethod(StrEnum):
    """Per-feature tests, chosen as Evidently chooses them by data size and kind."""

    KOLMOGOROV_SMIRNOV = "ks"
    CHI_SQUARE = "chi_square"
    Z_TEST = "z"
    """Two-proportion Z-test, for binary features of small references."""
    WASSERSTEIN = "wasserstein"
    JENSEN_SHANNON = "jensen_shannon"
    PSI = "psi"


class DriftSeverity(StrEnum):
    WARNING = "warning"
    SEVERE = "severe"


# -- shared parts -----------------------------------------------------------------


class ModelArtifact(_Part):
    """The trained model in object storage, as the registry verified it."""

    uri: ResourceUri
    sha256: Sha256Hex
    size_bytes: ByteSize
    framework: ModelFramework
    media_type: MediaType | None = None
    """`application/vnd.mlplane.artifact-tree.v1` when `uri` names a directory (an MLflow
    model: MLmodel, the model's files, its environment): `size_bytes` is then the sum of
    its files' sizes and `sha256` that of its manifest, one line per file (the file's
    sha256, two spaces, its path relative to the directory) sorted by path, as `sha256sum`
    prints it (`mlplane_contracts.artifacts.tree_digest`)."""


class DatasetRef(_Part):
    """A dataset the model was trained or evaluated on, pinned by content digest."""

    name: Name
    uri: ResourceUri
    digest: Digest


class Lineage(_Part):
    """Where a model version came from: code, CI run, data, parameters and results."""

    git_repository: WebUrl
    commit_sha: GitCommitSha
    git_ref: Name | None = None
    ci_run_url: WebUrl
    datasets: tuple[DatasetRef, ...] = ()
    params: dict[MetricKey, ParamValue] = Field(default_factory=dict)
    metrics: dict[MetricKey, Metric] = Field(default_factory=dict)


class ImageReference(_Part):
    """A container image pinned by manifest digest (never by tag alone)."""

    repository: ImageRepository
    digest: Digest

    @property
    def reference(self) -> str:
        """`<repository>@<digest>`, the form `docker pull` and Kubernetes accept."""
        return f"{self.repository}@{self.digest}"


class ImageLayer(_Part):
    digest: Digest
    size_bytes: ByteSize
    media_type: MediaType


class SeverityCounts(_Part):
    """How many findings of each severity a scan reported."""

    critical: Count = 0
    high: Count = 0
    medium: Count = 0
    low: Count = 0
    unknown: Count = 0


class FeatureDrift(_Part):
    """One feature's drift test: the statistic, its threshold, and the outcome."""

    feature: Name
    method: DriftMethod
    score: Score
    threshold: Score
    drifted: bool


class DriftSample(_Part):
    """One prediction a model server made: its input features, its output, and the
    true label when it is known. A feature's None is a missing value."""

    features: dict[Name, FeatureValue] = Field(max_length=MAX_SAMPLE_FEATURES)
    prediction: FeatureValue = None
    label: FeatureValue = None


# -- events -----------------------------------------------------------------------


@register_payload
class CiRunCompleted(EventPayload):
    """A CI pipeline finished a training run (sent by the gateway from the CI webhook)."""

    event_type = CI_RUN_COMPLETED

    team: DnsLabel
    model: DnsLabel
    provider: CiProvider
    run_id: Name
    conclusion: CiConclusion
    completed_at: Timestamp
    artifact: ModelArtifact | None = None
    """Present when the run uploaded a model; a failed run usually has none."""
    lineage: Lineage


@register_payload
class ModelVersionRegistered(EventPayload):
    """The registry accepted a new version of a model, artifact verified."""

    event_type = MODEL_VERSION_REGISTERED

    team: DnsLabel
    model: DnsLabel
    version: VersionNumber
    artifact: ModelArtifact
    lineage: Lineage
    tags: dict[MetricKey, ParamValue] = Field(default_factory=dict)
    registered_by: Principal
    registered_at: Timestamp
    attested: bool = True
    """False when the registry could not attest where the version came from (no git
    commit and CI run were given or found, e.g. a version registered from a bare MLflow
    `source`): `lineage` then holds what is known and `UNATTESTED_*` placeholders for the
    rest, and a consumer that requires lineage must treat it as missing. Absent
    (producers before this field): True."""


UNATTESTED_GIT_REPOSITORY = "https://unattested.invalid/"
"""`lineage.git_repository` of a version registered without lineage (`attested` False)."""
UNATTESTED_COMMIT_SHA = "0" * 40
"""`lineage.commit_sha` of a version registered without lineage (`attested` False)."""
UNATTESTED_CI_RUN_URL = "https://unattested.invalid/"
"""`lineage.ci_run_url` of a version registered without lineage (`attested` False)."""


@register_payload
class ModelAliasChanged(EventPayload):
    """An alias (`champion`, `challenger`) now points at another version, or at none."""

    event_type = MODEL_ALIAS_CHANGED

    team: DnsLabel
    model: DnsLabel
    alias: DnsLabel
    version: VersionNumber | None
    """The version the alias points at now; None when the alias was removed."""
    previous_version: VersionNumber | None = None
    changed_by: Principal
    changed_at: Timestamp


@register_payload
class ImageBuildStarted(EventPayload):
    """The builder started building an image for a model version (each try announces itself).

    Not in DESIGN.md's table: without it nothing could move a version to `building`,
    the lifecycle's second stage.
    """

    event_type = IMAGE_BUILD_STARTED

    team: DnsLabel
    model: DnsLabel
    version: VersionNumber
    backend: BuildBackend
    attempt: Count = Field(ge=1)
    started_at: Timestamp


@register_payload
class ImageBuilt(EventPayload):
    """The builder pushed a serving image for a model version."""

    event_type = IMAGE_BUILT

    team: DnsLabel
    model: DnsLabel
    version: VersionNumber
    image: ImageReference
    base_image: ImageReference
    layers: tuple[ImageLayer, ...] = Field(min_length=1)
    size_bytes: ByteSize
    backend: BuildBackend
    built_at: Timestamp


@register_payload
class ImageBuildFailed(EventPayload):
    """The builder gave up building an image for a model version."""

    event_type = IMAGE_BUILD_FAILED

    team: DnsLabel
    model: DnsLabel
    version: VersionNumber
    backend: BuildBackend
    reason: Text
    retryable: bool
    """True when the same inputs might build later (registry down), false when they never will."""
    failed_at: Timestamp


@register_payload
class ImageScanned(EventPayload):
    """The scanner scanned a built image and decided a verdict by policy."""

    event_type = IMAGE_SCANNED

    team: DnsLabel
    model: DnsLabel
    version: VersionNumber
    image: ImageReference
    verdict: ScanVerdict
    counts: SeverityCounts
    """Findings per severity, after policy exceptions and VEX statements."""
    reasons: tuple[Text, ...] = ()
    """Why the policy decided the verdict, e.g. `CVE-2024-3094 (critical, fixable)`."""
    report_uri: ResourceUri
    sbom_uri: ResourceUri | None = None
    scanner_version: Name
    scanned_at: Timestamp
    vulnerabilities_assessed: bool = True
    """False when no vulnerability database was reachable: only secrets, licenses and
    misconfigurations were checked, and the reasons say whether the policy blocked on it."""
    policy_version: VersionNumber | None = None
    """The version of the team's scan policy the verdict was decided by."""


@register_payload
class DeploymentRequested(EventPayload):
    """Someone asked to deploy a model version to an environment."""

    event_type = DEPLOYMENT_REQUESTED

    deployment_id: DeploymentId
    team: DnsLabel
    model: DnsLabel
    version: VersionNumber
    environment: Environment
    strategy: DeploymentStrategy = DeploymentStrategy.ROLLING
    canary_weight: Percent | None = None
    """Share of traffic the new version gets first, for the canary strategy."""
    reason: Text | None = None
    requested_by: Principal
    requested_at: Timestamp


@register_payload
class DeploymentStatusChanged(EventPayload):
    """A deployment moved to another phase."""

    event_type = DEPLOYMENT_STATUS_CHANGED

    deployment_id: DeploymentId
    team: DnsLabel
    model: DnsLabel
    version: VersionNumber
    environment: Environment
    phase: DeploymentPhase
    previous_phase: DeploymentPhase | None = None
    image: ImageReference | None = None
    gitops_commit: GitCommitSha | None = None
    """The commit in the GitOps repository that carries this deployment."""
    message: Text | None = None
    changed_at: Timestamp


@register_payload
class DriftDetected(EventPayload):
    """The served data of a model version drifted from its reference profile."""

    event_type = DRIFT_DETECTED

    team: DnsLabel
    model: DnsLabel
    version: VersionNumber
    environment: Environment
    severity: DriftSeverity
    drift_share: Share
    """Share of features that drifted."""
    share_threshold: Share
    """The share above which the dataset counts as drifted."""
    features: tuple[FeatureDrift, ...] = Field(min_length=1)
    sample_size: Count
    reference_size: Count
    window_start: Timestamp
    window_end: Timestamp
    report_uri: ResourceUri | None = None
    detected_at: Timestamp


@register_payload
class DriftSamples(EventPayload):
    """A batch of prediction samples a model server observed for one model version in one
    environment; the drift service folds it into that version's current window.

    Produced outside the platform (by the model servers' client library or any producer
    bound to the exchange), so the drift service takes `team` as the payload says:
    whoever may publish to the bus is trusted to name it, as with every event there.
    """

    event_type = DRIFT_SAMPLES

    team: DnsLabel
    model: DnsLabel
    version: VersionNumber
    environment: Environment
    samples: tuple[DriftSample, ...] = Field(min_length=1, max_length=MAX_DRIFT_SAMPLES)
    sent_at: Timestamp | None = None


PLATFORM_PAYLOADS: Mapping[str, type[EventPayload]] = MappingProxyType(
    {
        model.event_type: model
        for model in (
            CiRunCompleted,
            ModelVersionRegistered,
            ModelAliasChanged,
            ImageBuildStarted,
            ImageBuilt,
            ImageBuildFailed,
            ImageScanned,
            DeploymentRequested,
            DeploymentStatusChanged,
            DriftDetected,
        )
    }
)
"""The event types mlplane publishes, in table order: what the schemas and AsyncAPI describe.

The decoder knows every registered payload (`registered_payloads()`), which may
include types a test or an extension registers; only these are the published contract.
"""


INTAKE_PAYLOADS: Mapping[str, type[EventPayload]] = MappingProxyType(
    {model.event_type: model for model in (DriftSamples,)}
)
"""Event types a platform service consumes from producers outside the platform (model
servers): no platform service publishes them, so they are not in `PLATFORM_PAYLOADS`,
but their JSON Schemas and AsyncAPI messages are published beside the platform's, for
those producers to validate against."""

PUBLISHED_PAYLOADS: Mapping[str, type[EventPayload]] = MappingProxyType(
    {**PLATFORM_PAYLOADS, **INTAKE_PAYLOADS}
)
"""Every type the schemas and the AsyncAPI document describe."""
