"""One realistic payload per event type: for docs (AsyncAPI examples) and example-based tests.

Fixed values, so the published documents stay byte-for-byte reproducible.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from mlplane_contracts.envelope import CloudEvent, EventPayload
from mlplane_contracts.events import (
    BuildBackend,
    CiConclusion,
    CiProvider,
    CiRunCompleted,
    DatasetRef,
    DeploymentPhase,
    DeploymentRequested,
    DeploymentStatusChanged,
    DeploymentStrategy,
    DriftDetected,
    DriftMethod,
    DriftSample,
    DriftSamples,
    DriftSeverity,
    Environment,
    FeatureDrift,
    ImageBuildFailed,
    ImageBuildStarted,
    ImageBuilt,
    ImageLayer,
    ImageReference,
    ImageScanned,
    Lineage,
    ModelAliasChanged,
    ModelArtifact,
    ModelFramework,
    ModelVersionRegistered,
    ScanVerdict,
    SeverityCounts,
)
from mlplane_contracts.subjects import version_subject
from mlplane_contracts.topology import EXTERNAL_PRODUCERS, PRODUCED_BY, source_of

_AT = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
_DEPLOYMENT = UUID("6f1c2a9e-4b7d-4e0a-9c3f-2d8e5b1a7c40")
_COMMIT = "3f786850e387550fdab836ed7e6dc881de23001b"
_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

ARTIFACT = ModelArtifact(
    uri="s3://mlplane-models/risk/fraud/7/model.onnx",
    sha256="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    size_bytes=48_213_504,
    framework=ModelFramework.ONNX,
    media_type="application/onnx",
)
LINEAGE = Lineage(
    git_repository="https://github.com/acme/fraud-model",
    commit_sha=_COMMIT,
    git_ref="refs/heads/main",
    ci_run_url="https://github.com/acme/fraud-model/actions/runs/8123456789",
    datasets=(
        DatasetRef(
            name="transactions-2025-02",
            uri="s3://mlplane-data/risk/transactions/2025-02.parquet",
            digest="sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        ),
    ),
    params={"learning_rate": "0.05", "max_depth": "8"},
    metrics={"val/auc": 0.947, "val/precision_at_1pct": 0.81},
)
IMAGE = ImageReference(
    repository="harbor.acme.io/ml/risk-fraud",
    digest="sha256:b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c",
)
BASE_IMAGE = ImageReference(
    repository="harbor.acme.io/mlplane/serving-onnx",
    digest="sha256:7d865e959b2466918c9863afca942d0fb89d7c9ac0c99bafc3749504ded97730",
)

PAYLOADS: tuple[EventPayload, ...] = (
    CiRunCompleted(
        team="risk",
        model="fraud",
        provider=CiProvider.GITHUB_ACTIONS,
        run_id="8123456789",
        conclusion=CiConclusion.SUCCEEDED,
        completed_at=_AT,
        artifact=ARTIFACT,
        lineage=LINEAGE,
    ),
    ModelVersionRegistered(
        team="risk",
        model="fraud",
        version=7,
        artifact=ARTIFACT,
        lineage=LINEAGE,
        tags={"owner": "risk-ml"},
        registered_by="service:gateway",
        registered_at=_AT,
    ),
    ModelAliasChanged(
        team="risk",
        model="fraud",
        alias="champion",
        version=7,
        previous_version=6,
        changed_by="user:ada@acme.io",
        changed_at=_AT,
    ),
    ImageBuildStarted(
        team="risk",
        model="fraud",
        version=7,
        backend=BuildBackend.OCI_APPEND,
        attempt=1,
        started_at=_AT,
    ),
    ImageBuilt(
        team="risk",
        model="fraud",
        version=7,
        image=IMAGE,
        base_image=BASE_IMAGE,
        layers=(
            ImageLayer(digest=BASE_IMAGE.digest, size_bytes=61_440_113, media_type=_OCI_LAYER),
            ImageLayer(digest=IMAGE.digest, size_bytes=47_901_233, media_type=_OCI_LAYER),
        ),
        size_bytes=109_341_346,
        backend=BuildBackend.OCI_APPEND,
        built_at=_AT,
    ),
    ImageBuildFailed(
        team="risk",
        model="fraud",
        version=7,
        backend=BuildBackend.OCI_APPEND,
        reason="blob upload refused by harbor.acme.io: 403 quota exceeded",
        retryable=True,
        failed_at=_AT,
    ),
    ImageScanned(
        team="risk",
        model="fraud",
        version=7,
        image=IMAGE,
        verdict=ScanVerdict.FAILED,
        counts=SeverityCounts(critical=1, high=3, medium=12, low=40),
        reasons=("CVE-2024-3094 in xz-utils 5.6.0: critical, fix available in 5.6.1",),
        report_uri="s3://mlplane-scans/risk/fraud/7/trivy.json",
        sbom_uri="s3://mlplane-scans/risk/fraud/7/sbom.cdx.json",
        scanner_version="trivy 0.76.0",
        scanned_at=_AT,
    ),
    DeploymentRequested(
        deployment_id=_DEPLOYMENT,
        team="risk",
        model="fraud",
        version=7,
        environment=Environment.PROD,
        strategy=DeploymentStrategy.CANARY,
        canary_weight=10,
        reason="champion after A/B in staging",
        requested_by="user:ada@acme.io",
        requested_at=_AT,
    ),
    DeploymentStatusChanged(
        deployment_id=_DEPLOYMENT,
        team="risk",
        model="fraud",
        version=7,
        environment=Environment.PROD,
        phase=DeploymentPhase.HEALTHY,
        previous_phase=DeploymentPhase.PROGRESSING,
        image=IMAGE,
        gitops_commit="e69de29bb2d1d6434b8b29ae775ad8c2e48c5391",
        message="Argo CD: Synced, Healthy",
        changed_at=_AT,
    ),
    DriftDetected(
        team="risk",
        model="fraud",
        version=7,
        environment=Environment.PROD,
        severity=DriftSeverity.SEVERE,
        drift_share=0.6,
        share_threshold=0.5,
        features=(
            FeatureDrift(
                feature="amount_usd",
                method=DriftMethod.WASSERSTEIN,
                score=0.31,
                threshold=0.1,
                drifted=True,
            ),
            FeatureDrift(
                feature="merchant_category",
                method=DriftMethod.JENSEN_SHANNON,
                score=0.02,
                threshold=0.1,
                drifted=False,
            ),
        ),
        sample_size=50_000,
        reference_size=200_000,
        window_start=datetime(2025, 3, 14, 8, 0, tzinfo=UTC),
        window_end=datetime(2025, 3, 14, 9, 0, tzinfo=UTC),
        report_uri="s3://mlplane-drift/risk/fraud/7/2025-03-14T09.html",
        detected_at=_AT,
    ),
)
"""One example payload per registered type, in the order of DESIGN.md's table."""

INTAKE_EXAMPLES: tuple[EventPayload, ...] = (
    DriftSamples(
        team="risk",
        model="fraud",
        version=7,
        environment=Environment.PROD,
        samples=(
            DriftSample(
                features={"amount_usd": 129.5, "merchant_category": "grocery", "is_new": False},
                prediction=0.07,
                label=False,
            ),
            DriftSample(
                features={"amount_usd": 4800.0, "merchant_category": "travel", "is_new": True},
                prediction=0.91,
            ),
        ),
        sent_at=_AT,
    ),
)
"""One example payload per intake type (`events.INTAKE_PAYLOADS`)."""


def example_payload(event_type: str) -> EventPayload:
    """The example payload of `event_type`. Raises KeyError for a type with no example."""
    for payload in (*PAYLOADS, *INTAKE_EXAMPLES):
        if payload.event_type == event_type:
            return payload
    raise KeyError(event_type)


def example_event(event_type: str) -> CloudEvent:
    """A complete example event of `event_type`, every attribute set, with fixed values.

    Raises KeyError for a type with no example.
    """
    payload = example_payload(event_type)
    return CloudEvent(
        id="0b7e4c1a-2f3d-4a5b-8c6d-7e8f9a0b1c2d",
        source=(
            "/model-servers/risk/fraud"
            if event_type in EXTERNAL_PRODUCERS
            else source_of(PRODUCED_BY[event_type])
        ),
        type=event_type,
        subject=version_subject("risk", "fraud", 7),
        time=_AT,
        dataschema=payload.dataschema(),
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        sequence=3,
        data=payload,
    )
