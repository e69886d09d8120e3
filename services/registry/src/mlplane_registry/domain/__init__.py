"""The registry's domain: models, versions, aliases and a version's lifecycle. No I/O.

`lifecycle` holds the state machine fed by events (applied by event time and
sequence, never by arrival); `entities` the models, versions and aliases;
`errors` the domain errors and the DNS-1123 name rule; `artifacts` which artifact a
version may point at.
"""

from mlplane_registry.domain.artifacts import (
    ArtifactRefused,
    S3Location,
    TeamArtifactLocations,
    VerifiedArtifact,
    check_artifact,
)
from mlplane_registry.domain.entities import (
    Alias,
    Artifact,
    DatasetRef,
    Lineage,
    Model,
    ModelVersion,
)
from mlplane_registry.domain.errors import (
    DNS_LABEL,
    MAX_DNS_LABEL,
    AliasNotFound,
    InvalidName,
    InvalidTransition,
    ModelAlreadyExists,
    ModelNotFound,
    ModelVersionNotFound,
    StaleETag,
    check_dns_label,
)
from mlplane_registry.domain.lifecycle import (
    SERVING_PHASES,
    Applied,
    BuildFact,
    BuildStatus,
    DeploymentFact,
    EventStamp,
    Lifecycle,
    ScanFact,
    VersionStage,
    apply_build,
    apply_deployment,
    apply_scan,
)

__all__ = [
    "DNS_LABEL",
    "MAX_DNS_LABEL",
    "SERVING_PHASES",
    "Alias",
    "AliasNotFound",
    "Applied",
    "Artifact",
    "ArtifactRefused",
    "BuildFact",
    "BuildStatus",
    "DatasetRef",
    "DeploymentFact",
    "EventStamp",
    "InvalidName",
    "InvalidTransition",
    "Lifecycle",
    "Lineage",
    "Model",
    "ModelAlreadyExists",
    "ModelNotFound",
    "ModelVersion",
    "ModelVersionNotFound",
    "S3Location",
    "ScanFact",
    "StaleETag",
    "TeamArtifactLocations",
    "VerifiedArtifact",
    "VersionStage",
    "apply_build",
    "apply_deployment",
    "apply_scan",
    "check_artifact",
    "check_dns_label",
]
