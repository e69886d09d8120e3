"""`ArgoCdApplications` against the stand-in API server: apply, create, conflicts, 404."""

from __future__ import annotations

import pytest
from kubernetes_asyncio.client import ApiClient
from mlplane_deployer.argocd.client import ArgoCdApplications
from mlplane_deployer.argocd.errors import (
    ApplicationOwnedElsewhere,
    ApplicationRejected,
    ArgoCdUnavailable,
)
from mlplane_testing.kube_api import KubeApiStandIn

from .conftest import FAST, manifest, unique

REPO = "https://git.example.com/gitops.git"


class TestEnsureApplication:
    async def test_first_apply_creates_the_application(
        self, applications: ArgoCdApplications, kube: KubeApiStandIn, namespace: str
    ) -> None:
        name = unique()
        applied = await applications.ensure_application(manifest(name, REPO, "envs/dev/a"))
        assert applied.created
        assert applied.namespace == namespace
        stored = kube.store.get(namespace, name)
        assert stored["spec"]["source"]["path"] == "envs/dev/a"
        managers = {m["manager"]: m["operation"] for m in stored["metadata"]["managedFields"]}
        assert managers == {"mlplane-deployer": "Apply"}

    async def test_same_apply_twice_is_no_change(
        self, applications: ArgoCdApplications, kube: KubeApiStandIn
    ) -> None:
        body = manifest(unique(), REPO, "envs/dev/a")
        first = await applications.ensure_application(body)
        second = await applications.ensure_application(body)
        assert not second.created
        assert second.resource_version == first.resource_version

    async def test_changed_spec_is_applied_and_fields_dropped_are_removed(
        self, applications: ArgoCdApplications, kube: KubeApiStandIn, namespace: str
    ) -> None:
        name = unique()
        await applications.ensure_application(manifest(name, REPO, "envs/dev/a"))
        changed = manifest(name, REPO, "envs/dev/b")
        del changed["spec"]["syncPolicy"]
        applied = await applications.ensure_application(changed)
        assert applied.object["spec"]["source"]["path"] == "envs/dev/b"
        assert "syncPolicy" not in applied.object["spec"]
        assert applied.generation == 2

    async def test_status_written_by_argocd_survives_an_apply(
        self, applications: ArgoCdApplications, kube: KubeApiStandIn, namespace: str
    ) -> None:
        name = unique()
        await applications.ensure_application(manifest(name, REPO, "envs/dev/a"))
        kube.set_status(namespace, name, {"sync": {"status": "Synced"}})
        applied = await applications.ensure_application(manifest(name, REPO, "envs/dev/b"))
        assert applied.object["status"] == {"sync": {"status": "Synced"}}

    async def test_fields_edited_by_hand_are_taken_back_with_force(
        self, applications: ArgoCdApplications, kube: KubeApiStandIn, namespace: str
    ) -> None:
        name = unique()
        body = manifest(name, REPO, "envs/dev/a")
        await applications.ensure_application(body)
        kube.update_as("kubectl-edit", namespace, name, {"spec": {"project": "hand-made"}})
        applied = await applications.ensure_application(body)
        assert applied.object["spec"]["project"] == "default"
        assert kube.count("apply") == 3  # first, the conflict, the forced one

    async def test_field_conflict_without_force_is_owned_elsewhere(
        self, api: ApiClient, kube: KubeApiStandIn, namespace: str
    ) -> None:
        careful = ArgoCdApplications(api, namespace=namespace, backoff=FAST, force_conflicts=False)
        name = unique()
        body = manifest(name, REPO, "envs/dev/a")
        await careful.ensure_application(body)
        kube.update_as("kubectl-edit", namespace, name, {"spec": {"project": "hand-made"}})
        with pytest.raises(ApplicationOwnedElsewhere) as raised:
            await careful.ensure_application(body)
        assert any("spec.project" in c for c in raised.value.extensions["conflicts"])

    async def test_409_conflict_is_retried(
        self, applications: ArgoCdApplications, kube: KubeApiStandIn
    ) -> None:
        kube.fail_next("apply", 409, "Conflict", times=2)
        applied = await applications.ensure_application(manifest(unique(), REPO, "envs/dev/a"))
        assert applied.created
        assert kube.count("apply") == 3

    @pytest.mark.parametrize(
        ("code", "reason"),
        [(429, "TooManyRequests"), (503, "ServiceUnavailable"), (500, "InternalError")],
    )
    async def test_throttling_and_server_errors_are_retried(
        self, applications: ArgoCdApplications, kube: KubeApiStandIn, code: int, reason: str
    ) -> None:
        kube.fail_next("apply", code, reason, times=3)
        applied = await applications.ensure_application(manifest(unique(), REPO, "envs/dev/a"))
        assert applied.created
        assert kube.count("apply") == 4

    async def test_errors_that_never_stop_are_unavailable(
        self, applications: ArgoCdApplications, kube: KubeApiStandIn
    ) -> None:
        kube.fail_next("apply", 503, "ServiceUnavailable", times=50)
        with pytest.raises(ArgoCdUnavailable, match="503"):
            await applications.ensure_application(manifest(unique(), REPO, "envs/dev/a"))
        assert kube.count("apply") == FAST.attempts

    async def test_apply_answering_404_creates(
        self, applications: ArgoCdApplications, kube: KubeApiStandIn, namespace: str
    ) -> None:
        name = unique()
        kube.fail_next("apply", 404, "NotFound")
        applied = await applications.ensure_application(manifest(name, REPO, "envs/dev/a"))
        assert applied.created
        assert kube.count("create") == 1
        assert kube.store.get(namespace, name)["spec"]["source"]["path"] == "envs/dev/a"

    async def test_create_racing_another_creator_applies_over_it(
        self, applications: ArgoCdApplications, kube: KubeApiStandIn, namespace: str
    ) -> None:
        name = unique()
        kube.fail_next("apply", 404, "NotFound")
        kube.fail_next("create", 409, "AlreadyExists")
        applied = await applications.ensure_application(manifest(name, REPO, "envs/dev/a"))
        assert kube.count("apply") == 2
        assert applied.name == name

    async def test_not_an_application_is_rejected(self, applications: ArgoCdApplications) -> None:
        with pytest.raises(ApplicationRejected):
            await applications.ensure_application({"apiVersion": "v1", "kind": "ConfigMap"})

    async def test_invalid_answer_is_rejected_without_retry(
        self, applications: ArgoCdApplications, kube: KubeApiStandIn
    ) -> None:
        kube.fail_next("apply", 422, "Invalid")
        with pytest.raises(ApplicationRejected, match="422"):
            await applications.ensure_application(manifest(unique(), REPO, "envs/dev/a"))
        assert kube.count("apply") == 1


class TestGetAndDelete:
    async def test_missing_application_reads_as_none(
        self, applications: ArgoCdApplications
    ) -> None:
        assert await applications.get_application(unique()) is None

    async def test_delete_of_missing_application_is_false(
        self, applications: ArgoCdApplications
    ) -> None:
        assert await applications.delete_application(unique()) is False

    async def test_delete_waits_for_argocd_to_release_the_finalizer(
        self, applications: ArgoCdApplications, kube: KubeApiStandIn, namespace: str
    ) -> None:
        name = unique()
        await applications.ensure_application(manifest(name, REPO, "envs/dev/a"))
        assert await applications.delete_application(name) is True
        terminating = await applications.get_application(name)
        assert terminating is not None
        assert "deletionTimestamp" in terminating["metadata"]
        await kube.argocd().reconcile_once(namespace)
        assert await applications.get_application(name) is None


class TestStandInSemantics:
    """The stand-in answers as the API server does where the client does not go itself."""

    async def test_stale_put_is_a_409_conflict(
        self, applications: ArgoCdApplications, kube: KubeApiStandIn, namespace: str
    ) -> None:
        from mlplane_testing.kube_api import ApiError

        name = unique()
        applied = await applications.ensure_application(manifest(name, REPO, "envs/dev/a"))
        kube.set_status(namespace, name, {"sync": {"status": "OutOfSync"}})
        with pytest.raises(ApiError) as raised:
            kube.store.update(namespace, name, applied.object, "someone")
        assert raised.value.code == 409

    async def test_create_of_an_existing_name_is_409_already_exists(
        self, applications: ArgoCdApplications, kube: KubeApiStandIn, namespace: str
    ) -> None:
        from mlplane_testing.kube_api import ApiError

        body = manifest(unique(), REPO, "envs/dev/a")
        await applications.ensure_application(body)
        with pytest.raises(ApiError) as raised:
            kube.store.create(namespace, body, "someone")
        assert (raised.value.code, raised.value.reason) == (409, "AlreadyExists")
