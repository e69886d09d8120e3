"""Events as the registry, builder, scanner and gateway emit them, and git for assertions."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

from mlplane_contracts import events as ev
from mlplane_contracts.envelope import CloudEvent, new_event

REPOSITORY = "registry.local:5000/mlplane/acme/fraud"
AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def git(cwd: Path, *args: str, check: bool = True) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=check, timeout=60
    ).stdout


def log_of(remote: Path, *args: str) -> list[str]:
    """Commit subjects on the remote's main branch, newest first."""
    out = git(remote, "log", "--format=%s", "main", *args) if (remote / "refs").exists() else ""
    return [line for line in out.splitlines() if line]


def digest_of(model: str, version: int) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(f"{model}:{version}".encode()).hexdigest()


def registered(
    team: str, model: str = "fraud", version: int = 1, lineage: bool = True
) -> CloudEvent:
    return new_event(
        ev.ModelVersionRegistered(
            team=team,
            model=model,
            version=version,
            artifact=ev.ModelArtifact(
                uri=f"s3://models/{model}/{version}/model.onnx",
                sha256="ab" * 32,
                size_bytes=2048,
                framework=ev.ModelFramework.SKLEARN,
            ),
            lineage=ev.Lineage(
                git_repository="https://git.example.com/ml/fraud",
                commit_sha="c" * 40,
                ci_run_url="https://ci.example.com/runs/42",
            )
            if lineage
            else ev.Lineage(
                git_repository=ev.UNATTESTED_GIT_REPOSITORY,
                commit_sha=ev.UNATTESTED_COMMIT_SHA,
                ci_run_url=ev.UNATTESTED_CI_RUN_URL,
            ),
            attested=lineage,
            registered_by="service:ci:github_actions",
            registered_at=AT,
        ),
        source="/mlplane/registry",
        subject=f"models/{team}/{model}/versions/{version}",
    )


def built(team: str, model: str = "fraud", version: int = 1) -> CloudEvent:
    image = ev.ImageReference(repository=REPOSITORY, digest=digest_of(model, version))
    return new_event(
        ev.ImageBuilt(
            team=team,
            model=model,
            version=version,
            image=image,
            base_image=image,
            layers=(
                ev.ImageLayer(
                    digest=digest_of("layer", version),
                    size_bytes=10,
                    media_type="application/vnd.oci.image.layer.v1.tar+gzip",
                ),
            ),
            size_bytes=10,
            backend=ev.BuildBackend.OCI_APPEND,
            built_at=AT + timedelta(minutes=1),
        ),
        source="/mlplane/builder",
        subject=f"models/{team}/{model}/versions/{version}",
    )


def scanned(
    team: str,
    model: str = "fraud",
    version: int = 1,
    verdict: ev.ScanVerdict = ev.ScanVerdict.PASSED,
    policy_version: int = 1,
    minutes: int = 2,
) -> CloudEvent:
    return new_event(
        ev.ImageScanned(
            team=team,
            model=model,
            version=version,
            image=ev.ImageReference(repository=REPOSITORY, digest=digest_of(model, version)),
            verdict=verdict,
            counts=ev.SeverityCounts(),
            report_uri="file:///reports/x.json",
            scanner_version="0.76.0",
            scanned_at=AT + timedelta(minutes=minutes),
            policy_version=policy_version,
        ),
        source="/mlplane/scanner",
        subject=f"models/{team}/{model}/versions/{version}",
    )


def alias_moved(
    team: str, alias: str, version: int | None, model: str = "fraud", by: str = "user:mover"
) -> CloudEvent:
    return new_event(
        ev.ModelAliasChanged(
            team=team,
            model=model,
            alias=alias,
            version=version,
            changed_by=by,
            changed_at=datetime.now(UTC),
        ),
        source="/mlplane/registry",
        subject=f"models/{team}/{model}/aliases/{alias}",
    )


def requested(
    team: str,
    environment: ev.Environment = ev.Environment.DEV,
    model: str = "fraud",
    version: int = 1,
    deployment_id: UUID | None = None,
) -> CloudEvent:
    return new_event(
        ev.DeploymentRequested(
            deployment_id=deployment_id or uuid4(),
            team=team,
            model=model,
            version=version,
            environment=environment,
            requested_by="user:requester",
            requested_at=datetime.now(UTC),
        ),
        source="/mlplane/gateway",
        subject=f"models/{team}/{model}/versions/{version}",
    )


def ready(team: str, model: str = "fraud", version: int = 1) -> list[CloudEvent]:
    """What the deployer learns before a version may deploy: registered, built, scanned."""
    return [
        registered(team, model, version),
        built(team, model, version),
        scanned(team, model, version),
    ]


def drifted(
    team: str,
    version: int,
    severity: ev.DriftSeverity = ev.DriftSeverity.SEVERE,
    environment: ev.Environment = ev.Environment.DEV,
    model: str = "fraud",
) -> CloudEvent:
    """The drift service's `drift.detected` for one version serving in `environment`."""
    now = datetime.now(UTC)
    return new_event(
        ev.DriftDetected(
            team=team,
            model=model,
            version=version,
            environment=environment,
            severity=severity,
            drift_share=0.6,
            share_threshold=0.5,
            features=(
                ev.FeatureDrift(
                    feature="amount",
                    method=ev.DriftMethod.KOLMOGOROV_SMIRNOV,
                    score=0.4,
                    threshold=0.1,
                    drifted=True,
                ),
            ),
            sample_size=1000,
            reference_size=5000,
            window_start=now - timedelta(hours=1),
            window_end=now,
            detected_at=now,
        ),
        source="/mlplane/drift",
        subject=f"models/{team}/{model}/versions/{version}",
    )
