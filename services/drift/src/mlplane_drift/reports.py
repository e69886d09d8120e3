"""A judged window as a report document (JSON, kept in object storage and in the
`reports` table) and, when the hysteresis fires, as a `drift.detected` event."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from mlplane_contracts import events as ev

from mlplane_drift import distributions
from mlplane_drift.profile import ReferenceProfile
from mlplane_drift.store import WindowRow
from mlplane_drift.summaries import Alerting, Judgement

MAX_EVENT_FEATURES = 200


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def report_document(
    report_id: UUID,
    window: WindowRow,
    profile: ReferenceProfile,
    judgement: Judgement,
    alerting: Alerting,
    *,
    now: datetime,
) -> dict[str, Any]:
    """The report of one judged window, every feature with its test and distributions."""
    verdict = judgement.verdict
    features = []
    for result in verdict.features:
        features.append(
            {
                "feature": result.feature,
                "kind": str(result.kind),
                "method": None if result.method is None else str(result.method),
                "score": _number(result.score),
                "threshold": _number(result.threshold),
                "drifted": bool(result.drifted),
                "psi": _number(result.psi),
                "nan_share": _number(result.nan_share),
                "unseen_share": _number(result.unseen_share),
                "note": result.note,
                "distribution": distributions.of_feature(profile, judgement.window, result.feature),
            }
        )
    return {
        "id": str(report_id),
        "team": window.team,
        "model": window.model,
        "version": window.version,
        "environment": window.environment,
        "window": {
            "id": window.id,
            "start": window.opened_at.isoformat(),
            "end": (window.closed_at or now).isoformat(),
            "samples": int(verdict.sample_size),
        },
        "reference": {"profile_uri": window.profile_uri, "rows": int(verdict.reference_size)},
        "drift_share": _number(verdict.drift_share),
        "dataset_drifted": bool(verdict.dataset_drifted),
        "severity": alerting.severity,
        "alert_fired": alerting.fire,
        "features": features,
        "created_at": now.isoformat(),
    }


def alert_event(
    window: WindowRow,
    judgement: Judgement,
    alerting: Alerting,
    report_uri: str,
    now: datetime,
) -> ev.DriftDetected:
    """`drift.detected` for a window whose verdict fired the alert: the drifted features
    first (all of them when none drifted: a severity from scores alone)."""
    verdict = judgement.verdict
    tested = [r for r in verdict.features if r.method is not None]
    ranked = sorted(tested, key=lambda r: (not r.drifted, r.feature))
    drifted = [r for r in ranked if r.drifted] or ranked
    return ev.DriftDetected(
        team=window.team,
        model=window.model,
        version=window.version,
        environment=ev.Environment(window.environment),
        severity=ev.DriftSeverity(alerting.severity or ev.DriftSeverity.WARNING),
        drift_share=float(verdict.drift_share),
        share_threshold=float(verdict.share_threshold),
        features=tuple(
            ev.FeatureDrift(
                feature=r.feature,
                method=ev.DriftMethod(str(r.method)),
                score=max(_number(r.score) or 0.0, 0.0),
                threshold=max(_number(r.threshold) or 0.0, 0.0),
                drifted=bool(r.drifted),
            )
            for r in drifted[:MAX_EVENT_FEATURES]
        ),
        sample_size=int(verdict.sample_size),
        reference_size=int(verdict.reference_size),
        window_start=window.opened_at,
        window_end=window.closed_at or now,
        report_uri=report_uri,
        detected_at=now,
    )
