"""deploy/kubernetes renders with `kubectl kustomize` (base and production overlay) and every
object validates against Kubernetes' own schemas (kubernetes-validate, strict); KEDA's
objects have no schema here (KEDA's CRDs are not bundled): their shape is checked below."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from core.config import JOBS_QUEUE, QUEUES

ROOT = Path(__file__).resolve().parents[2]
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication"}
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "DATABASE_URL", "BROKER_URL")


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (make test installs it from Debian's packages)")
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "kubernetes" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module", params=["base", "overlays/production"])
def objects(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def by(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_every_object_validates_against_kubernetes_schemas(objects: list[dict[str, Any]]) -> None:
    version = kubernetes_validate.latest_version()
    for thing in objects:
        if thing["kind"] in KEDA_KINDS:
            continue
        kubernetes_validate.validate(thing, version, strict=True)


def test_api_workers_exactly_one_beat_and_the_migration(objects: list[dict[str, Any]]) -> None:
    deployments = by(objects, "Deployment")
    commands = {
        name: d["spec"]["template"]["spec"]["containers"][0]["command"]
        for name, d in deployments.items()
    }
    assert commands["soraq-api"][:2] == ["soraq", "api"]
    consumed = {c[3] for c in commands.values() if c[1] == "worker"}
    assert consumed == set(QUEUES)  # job steps, webhooks and archiving each have workers
    beat = deployments["soraq-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    [job] = by(objects, "Job").values()
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["soraq", "migrate"]


def test_the_api_is_probed_and_everything_has_resources(objects: list[dict[str, Any]]) -> None:
    api = by(objects, "Deployment")["soraq-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for deployment in by(objects, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["resources"]["requests"]["memory"]
            assert container["resources"]["limits"]["memory"]


def test_secrets_come_from_an_existing_secret_never_the_manifests(
    objects: list[dict[str, Any]],
) -> None:
    assert not by(objects, "Secret")
    for name, data in ((n, c.get("data", {})) for n, c in by(objects, "ConfigMap").items()):
        assert not [k for k in data if any(word in k for word in SECRET_WORDS)], name
    for deployment in [*by(objects, "Deployment").values(), *by(objects, "Job").values()]:
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            refs = [source.get("secretRef", {}).get("name") for source in container["envFrom"]]
            assert "soraq" in refs
            for variable in container.get("env", []):
                assert "value" not in variable or not any(
                    word in variable["name"] for word in SECRET_WORDS
                )


def test_scaling_and_disruption_budgets(objects: list[dict[str, Any]]) -> None:
    hpa = by(objects, "HorizontalPodAutoscaler")["soraq-api"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "soraq-api"
    assert "replicas" not in by(objects, "Deployment")["soraq-api"]["spec"]  # the HPA's
    assert {"soraq-api", "soraq-worker"} <= set(by(objects, "PodDisruptionBudget"))
    scaled = by(objects, "ScaledObject")["soraq-worker"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] in by(objects, "Deployment")
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == JOBS_QUEUE  # Celery's queue is a Redis list
    auth = trigger["authenticationRef"]["name"]
    assert auth in by(objects, "TriggerAuthentication")


def test_the_production_overlay_has_its_namespace_and_a_pinned_image() -> None:
    objects = render("overlays/production")
    for thing in objects:
        if thing["kind"] != "Namespace":
            assert thing["metadata"]["namespace"] == "soraq", thing["kind"]
    for deployment in by(objects, "Deployment").values():
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert not image.endswith(":latest")
        assert ":" in image
