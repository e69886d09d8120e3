from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import pytest
from kubernetes_validate import utils as kv
from mlplane_deployer.domain.environments import ServingKind
from mlplane_deployer.domain.errors import (
    InvalidImageReference,
    InvalidManifests,
    InvalidRenderInput,
)
from mlplane_deployer.render import render_validated
from mlplane_deployer.render.application import ArgoTarget, application
from mlplane_deployer.render.spec import Canary, ImageByDigest, RenderSpec, Workload
from mlplane_deployer.render.tree import render
from mlplane_deployer.render.validate import validate_objects

from ..support import REPOSITORY, digest, image, spec


def _kinds(tree_objects: tuple[tuple[str, dict[str, Any]], ...]) -> list[str]:
    return [obj["kind"] for _, obj in tree_objects]


def _by_kind(s: RenderSpec, kind: str) -> list[dict[str, Any]]:
    return [obj for _, obj in render(s).objects if obj["kind"] == kind]


class TestImageByDigest:
    def test_digest_reference_is_parsed(self) -> None:
        parsed = ImageByDigest.parse(f"{REPOSITORY}@{digest('c')}")
        assert parsed.repository == REPOSITORY
        assert parsed.reference == f"{REPOSITORY}@{digest('c')}"

    @pytest.mark.parametrize(
        "reference",
        [
            f"{REPOSITORY}:1.2",
            f"{REPOSITORY}:latest",
            f"{REPOSITORY}:1.2@{'sha256:' + 'a' * 64}",
            REPOSITORY,
            f"{REPOSITORY}@sha256:short",
            f"{REPOSITORY}@md5:{'a' * 32}",
        ],
    )
    def test_tag_or_missing_digest_is_refused(self, reference: str) -> None:
        with pytest.raises(InvalidImageReference):
            ImageByDigest.parse(reference)

    def test_registry_port_is_not_a_tag(self) -> None:
        assert ImageByDigest.parse(f"127.0.0.1:5000/fraud@{digest('d')}").repository == (
            "127.0.0.1:5000/fraud"
        )


class TestKustomizeRendering:
    def test_base_holds_every_kind(self) -> None:
        assert _kinds(render(spec()).objects) == [
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "ServiceMonitor",
        ]

    def test_pods_run_as_non_root_with_a_read_only_root_filesystem(self) -> None:
        (deployment,) = _by_kind(spec(), "Deployment")
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}

    def test_containers_have_requests_limits_and_probes(self) -> None:
        (deployment,) = _by_kind(spec(), "Deployment")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert set(container["resources"]) == {"requests", "limits"}
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["port"] == "http"

    def test_image_is_pinned_by_digest(self) -> None:
        (deployment,) = _by_kind(spec(seed="e"), "Deployment")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"{REPOSITORY}@{digest('e')}"

    def test_selector_does_not_carry_the_version(self) -> None:
        (deployment,) = _by_kind(spec(), "Deployment")
        assert "app.kubernetes.io/version" not in deployment["spec"]["selector"]["matchLabels"]
        assert "replicas" not in deployment["spec"]  # the HPA owns it

    def test_canary_splits_traffic_by_httproute_weights(self) -> None:
        s = spec(canary_weight=10)
        deployments = _by_kind(s, "Deployment")
        assert [d["metadata"]["name"] for d in deployments] == [s.model, f"{s.model}-canary"]
        (route,) = _by_kind(s, "HTTPRoute")
        weights = {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}
        assert weights == {s.model: 90, f"{s.model}-canary": 10}
        images = [d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deployments]
        assert images == [f"{REPOSITORY}@{digest('b')}", f"{REPOSITORY}@{digest('a')}"]

    def test_route_without_canary_sends_everything_to_stable(self) -> None:
        s = spec(gateway=True)
        (route,) = _by_kind(s, "HTTPRoute")
        assert route["spec"]["rules"][0]["backendRefs"][0]["weight"] == 100

    def test_canary_without_a_gateway_is_refused(self) -> None:
        base = spec()
        with pytest.raises(InvalidRenderInput):
            RenderSpec(
                base.team,
                base.model,
                "dev",
                Workload(8, image("a")),
                canary=Canary(Workload(7, image("b")), 10),
            )

    @pytest.mark.parametrize("weight", [0, 100, -5])
    def test_canary_weight_outside_1_to_99_is_refused(self, weight: int) -> None:
        with pytest.raises(InvalidRenderInput):
            Canary(Workload(7, image("b")), weight)

    def test_overlay_sets_the_namespace_over_the_base(self) -> None:
        s = spec(environment="staging")
        tree = render(s)
        overlay = tree.files[f"{s.directory}/overlay/kustomization.yaml"].decode()
        assert f"namespace: {s.team}-staging" in overlay
        assert "- ../base" in overlay


class TestKServeRendering:
    def test_kserve_environment_renders_one_inference_service(self) -> None:
        s = spec(serving=ServingKind.KSERVE)
        assert _kinds(render(s).objects) == ["InferenceService"]
        (isvc,) = _by_kind(s, "InferenceService")
        (container,) = isvc["spec"]["predictor"]["containers"]
        assert container["image"] == f"{REPOSITORY}@{digest('a')}"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True

    def test_kserve_canary_is_its_traffic_percent(self) -> None:
        (isvc,) = _by_kind(spec(serving=ServingKind.KSERVE, canary_weight=25), "InferenceService")
        assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 25


class TestDeterminism:
    def test_same_spec_renders_the_same_bytes(self) -> None:
        s = spec(canary_weight=30)
        assert render(s).files == render(copy.deepcopy(s)).files

    def test_bytes_do_not_depend_on_the_interpreter_run(self) -> None:
        code = (
            "import hashlib,sys\n"
            "from mlplane_deployer.render.tree import render\n"
            "from mlplane_deployer.render.spec import *\n"
            f"img=ImageByDigest({REPOSITORY!r}, {digest('a')!r})\n"
            f"old=ImageByDigest({REPOSITORY!r}, {digest('b')!r})\n"
            "s=RenderSpec('acme','fraud','prod',Workload(8,img),canary=Canary(Workload(7,old),10),"
            "gateway=GatewayRef('public','gateway'))\n"
            "t=render(s)\n"
            "h=hashlib.sha256()\n"
            "[h.update(k.encode()+v) for k,v in t.files.items()]\n"
            "print(h.hexdigest())\n"
        )
        outputs = {
            subprocess.run(
                [sys.executable, "-c", code],
                env={"PYTHONHASHSEED": seed},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            for seed in ("1", "2", "3")
        }
        assert len(outputs) == 1


class TestValidation:
    @pytest.mark.parametrize("kubernetes_version", ["1.28", kv.latest_version()])
    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {"gateway": True},
            {"canary_weight": 10},
            {"serving": ServingKind.KSERVE},
            {"serving": ServingKind.KSERVE, "canary_weight": 50},
        ],
    )
    def test_everything_rendered_validates(
        self, kwargs: dict[str, Any], kubernetes_version: str
    ) -> None:
        render_validated(spec(**kwargs), kubernetes_version)

    def test_argo_application_validates_against_its_crd(self) -> None:
        s = spec()
        app = application(s, ArgoTarget("https://git.example.com/gitops.git"), render(s).overlay)
        validate_objects([("application", app)])

    def test_unknown_field_in_a_builtin_kind_is_an_error(self) -> None:
        (deployment,) = _by_kind(spec(), "Deployment")
        deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
        with pytest.raises(InvalidManifests) as raised:
            validate_objects([("deployment.yaml", deployment)])
        assert "imagePullPolicyy" in raised.value.extensions["errors"][0]

    def test_every_error_is_reported(self) -> None:
        s = spec(canary_weight=10)
        (route,) = _by_kind(s, "HTTPRoute")
        route["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
        route["spec"]["parentRefs"][0]["sectionNme"] = "https"
        (monitor,) = _by_kind(s, "ServiceMonitor")
        monitor["spec"]["endpoints"][0]["interval"] = "thirty seconds"
        with pytest.raises(InvalidManifests) as raised:
            validate_objects([("route", route), ("monitor", monitor)])
        errors = raised.value.extensions["errors"]
        assert len(errors) == 3
        assert any("weight" in e for e in errors)
        assert any("sectionNme" in e for e in errors)
        assert any("interval" in e for e in errors)

    def test_application_missing_its_destination_is_an_error(self) -> None:
        s = spec()
        app = application(s, ArgoTarget("https://git.example.com/gitops.git"), "x")
        del app["spec"]["destination"]
        with pytest.raises(InvalidManifests):
            validate_objects([("application", app)])

    def test_unknown_kind_is_an_error(self) -> None:
        with pytest.raises(InvalidManifests):
            validate_objects([("x", {"apiVersion": "example.com/v1", "kind": "Widget"})])
