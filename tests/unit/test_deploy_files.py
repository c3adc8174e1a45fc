"""docker-compose.yml and the Dockerfile, read as a reviewer would (no engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_has_the_production_services(compose: dict[str, Any]) -> None:
    assert {"postgres", "redis", "migrate", "api", "worker", "beat"} <= set(compose["services"])
    # The sandbox runs only when asked for: development, or test-mode keys in production.
    assert compose["services"]["sandbox"]["profiles"] == ["dev", "test-mode"]
    assert "pgdata" in compose["volumes"]
    assert any("pgdata:" in v for v in compose["services"]["postgres"]["volumes"])


def test_databases_have_healthchecks_and_the_app_waits_for_them(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"]
    for name in ("api", "worker", "webhook-worker", "archive-worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["soraq", "migrate"]


def test_minio_stores_results_and_its_bucket_exists_first(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "media:/data" in services["minio"]["volumes"]
    assert services["minio"]["healthcheck"]["test"]
    bucket = services["minio-bucket"]
    assert bucket["depends_on"]["minio"]["condition"] == "service_healthy"
    assert "mc mb" in " ".join(bucket["command"])
    for name in ("api", "worker", "webhook-worker", "beat"):
        assert (
            services[name]["depends_on"]["minio-bucket"]["condition"]
            == "service_completed_successfully"
        )


def test_worker_and_beat_run_the_cli_verbs(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["worker"]["command"] == ["soraq", "worker", "--queues", "soraq"]
    assert services["webhook-worker"]["command"] == ["soraq", "worker", "--queues", "webhooks"]
    assert services["archive-worker"]["command"] == ["soraq", "worker", "--queues", "archive"]
    assert "deploy" not in services["worker"] or "replicas" not in services["worker"]["deploy"]
    assert services["beat"]["command"] == ["soraq", "beat"]
    assert services["beat"]["deploy"]["replicas"] == 1  # exactly one scheduler


def test_no_secret_is_written_inline(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        for key, value in environment.items():
            if re.search(r"KEY|SECRET|PASSWORD|TOKEN", key):
                assert str(value).startswith("${"), f"{name}.{key} is written inline"
        if name not in ("postgres", "redis", "minio", "minio-bucket"):
            assert service.get("env_file") == ".env"


def test_env_example_documents_every_setting() -> None:
    example = (ROOT / ".env.example").read_text()
    for setting, field in Settings.model_fields.items():
        if field.exclude:
            continue  # derived, not a setting
        assert re.search(rf"^#? ?{setting.upper()}=", example, re.MULTILINE), setting
    for required in ("DATABASE_URL", "CELERY_BROKER_URL", "KIE_API_KEY", "IMGBB_API_KEY"):
        assert re.search(rf"^{required}=", example, re.MULTILINE), required


def test_dockerfile_is_slim_non_root_and_without_dev_dependencies() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", dockerfile, re.MULTILINE)
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)
    assert "pip install ." in dockerfile
    assert "[dev]" not in dockerfile


def test_the_image_has_every_package_the_distribution_installs() -> None:
    # A package left out of the COPY lines would make `pip install .` build an image that
    # fails on its first import.
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) ", dockerfile, re.MULTILINE))
    pyproject = (ROOT / "pyproject.toml").read_text()
    include = re.search(r"include = \[(.*?)\]", pyproject, re.DOTALL)
    assert include is not None
    for package in re.findall(r'"(\w+)\*"', include.group(1)):
        assert package in copied, f"the Dockerfile does not copy {package}/"
    assert "clients/python" in copied  # the CLI's `soraq submit` uses the Python client


def test_soraq_s_own_downloads_reach_the_sandbox_alone_and_clients_reach_nothing_private(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    sandbox_address = services["sandbox"]["networks"]["default"]["ipv4_address"]
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    for name in ("api", "worker", "webhook-worker", "beat"):
        environment = services[name]["environment"]
        upstream = environment["UPSTREAM_ALLOWED_NETWORKS"]
        assert upstream == "${UPSTREAM_ALLOWED_NETWORKS:-" + sandbox_address + "/32}"
        assert "WEBHOOK_ALLOWED_NETWORKS" not in environment
    assert sandbox_address.startswith(subnet.rsplit(".", 1)[0] + ".")
