"""CI payloads to `ci.run.completed`: conventions for model, artifact and conclusion."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mlplane_contracts.events import CiConclusion, CiRunCompleted, ModelFramework
from mlplane_gateway.errors import WebhookRefused
from mlplane_gateway.ingress import ci_runs
from mlplane_gateway.ingress.ci_runs import Ignored, WebhookHints

from ..payloads import custom_run, gitlab_pipeline, raw, release, workflow_run

NOW = datetime(2026, 12, 1, tzinfo=UTC)
NO_HINTS = WebhookHints()


def fact(result: CiRunCompleted | Ignored) -> CiRunCompleted:
    assert isinstance(result, CiRunCompleted), result
    return result


class TestWorkflowRun:
    @pytest.mark.parametrize(
        ("conclusion", "expected"),
        [
            ("success", CiConclusion.SUCCEEDED),
            ("failure", CiConclusion.FAILED),
            ("timed_out", CiConclusion.FAILED),
            ("startup_failure", CiConclusion.FAILED),
            ("cancelled", CiConclusion.CANCELLED),
        ],
    )
    def test_conclusions(self, conclusion: str, expected: CiConclusion) -> None:
        result = ci_runs.from_github_workflow_run(
            "risk", raw(workflow_run(conclusion=conclusion)), NO_HINTS
        )
        assert fact(result).conclusion is expected

    def test_skipped_runs_are_ignored(self) -> None:
        result = ci_runs.from_github_workflow_run(
            "risk", raw(workflow_run(conclusion="skipped")), NO_HINTS
        )
        assert isinstance(result, Ignored)

    @pytest.mark.parametrize("path", [".github/workflows/mlplane-fraud.yaml", "mlplane-fraud.yml"])
    def test_the_model_comes_from_the_workflow_file(self, path: str) -> None:
        result = ci_runs.from_github_workflow_run("risk", raw(workflow_run(path=path)), NO_HINTS)
        assert fact(result).model == "fraud"

    def test_a_rerun_is_another_run(self) -> None:
        first = ci_runs.from_github_workflow_run("risk", raw(workflow_run(attempt=1)), NO_HINTS)
        second = ci_runs.from_github_workflow_run("risk", raw(workflow_run(attempt=2)), NO_HINTS)
        assert fact(first).run_id != fact(second).run_id

    def test_a_model_hint_that_is_not_a_label_is_refused(self) -> None:
        with pytest.raises(WebhookRefused, match="DNS-1123"):
            ci_runs.from_github_workflow_run(
                "risk", raw(workflow_run()), WebhookHints(model="Not_A_Label")
            )


class TestRelease:
    @pytest.mark.parametrize(("tag", "model"), [("fraud/v2", "fraud"), ("churn@1.0.0", "churn")])
    def test_the_model_comes_from_the_tag(self, tag: str, model: str) -> None:
        assert (
            fact(ci_runs.from_github_release("risk", raw(release(tag=tag)), NO_HINTS)).model
            == model
        )

    def test_an_untagged_model_is_ignored(self) -> None:
        assert isinstance(
            ci_runs.from_github_release("risk", raw(release(tag="v1.0")), NO_HINTS), Ignored
        )

    def test_drafts_and_edits_are_ignored(self) -> None:
        assert isinstance(
            ci_runs.from_github_release("risk", raw(release(action="edited")), NO_HINTS), Ignored
        )

    def test_a_release_without_a_digest_is_refused(self) -> None:
        asset = {"name": "model.pkl", "size": 1, "browser_download_url": "https://x.test/m"}
        with pytest.raises(WebhookRefused, match="digest"):
            ci_runs.from_github_release("risk", raw(release(assets=[asset])), NO_HINTS)

    def test_the_framework_follows_the_suffix_unless_hinted(self) -> None:
        plain = fact(ci_runs.from_github_release("risk", raw(release()), NO_HINTS))
        hinted = fact(
            ci_runs.from_github_release(
                "risk", raw(release()), WebhookHints(framework=ModelFramework.PYTORCH)
            )
        )
        assert plain.artifact is not None
        assert hinted.artifact is not None
        assert (plain.artifact.framework, hinted.artifact.framework) == (
            ModelFramework.ONNX,
            ModelFramework.PYTORCH,
        )


class TestGitlabPipeline:
    @pytest.mark.parametrize("status", ["running", "pending", "created", "skipped", "manual"])
    def test_unfinished_pipelines_are_ignored(self, status: str) -> None:
        result = ci_runs.from_gitlab_pipeline(
            "risk", raw(gitlab_pipeline(status=status)), NO_HINTS, NOW
        )
        assert isinstance(result, Ignored)

    def test_a_failed_pipeline_without_an_artifact(self) -> None:
        result = ci_runs.from_gitlab_pipeline(
            "risk",
            raw(gitlab_pipeline(status="failed", variables={"MLPLANE_MODEL": "churn"})),
            NO_HINTS,
            NOW,
        )
        assert fact(result).conclusion is CiConclusion.FAILED
        assert fact(result).artifact is None
        assert fact(result).completed_at == NOW  # GitLab sent no finished_at

    def test_a_half_described_artifact_names_what_is_missing(self) -> None:
        variables = {"MLPLANE_MODEL": "churn", "MLPLANE_ARTIFACT_URI": "s3://m/x"}
        with pytest.raises(WebhookRefused, match="MLPLANE_ARTIFACT_SHA256"):
            ci_runs.from_gitlab_pipeline(
                "risk", raw(gitlab_pipeline(variables=variables)), NO_HINTS, NOW
            )

    def test_no_model_is_ignored(self) -> None:
        result = ci_runs.from_gitlab_pipeline(
            "risk", raw(gitlab_pipeline(variables={})), NO_HINTS, NOW
        )
        assert isinstance(result, Ignored)


class TestCustom:
    def test_the_team_and_provider_are_the_gateways(self) -> None:
        from mlplane_contracts.events import CiProvider

        result = ci_runs.from_custom("risk", CiProvider.OTHER, raw(custom_run()))
        assert (result.team, result.provider) == ("risk", CiProvider.OTHER)

    def test_unknown_fields_are_refused(self) -> None:
        from mlplane_contracts.events import CiProvider

        with pytest.raises(WebhookRefused) as refused:
            ci_runs.from_custom("risk", CiProvider.OTHER, raw(custom_run(extra=1)))
        assert refused.value.extensions["errors"][0]["field"] == "extra"
