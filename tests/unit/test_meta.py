from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


def test_readyz_reports_database_and_broker(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert "migrations at head" in body["checks"]["database"]
    assert body["checks"]["broker"] == "reachable"


def test_metrics_read_jobs_from_the_database(client: TestClient) -> None:
    client.post("/jobs", json={"prompt": "counted"})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'soraq_jobs_total{model="veo3.1-fast/text-to-video",status="queued"}' in text
    assert 'soraq_queue_depth{state="queued"}' in text
    assert "soraq_oldest_due_check_seconds" in text


def test_metrics_need_the_token_when_one_is_set(
    migrated: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.app import create_app
    from core.config import get_settings

    monkeypatch.setenv("METRICS_TOKEN", "scrape-me")
    get_settings.cache_clear()
    try:
        with TestClient(create_app()) as client:
            assert client.get("/metrics").status_code == 401
            wrong = {"authorization": "Bearer nope"}
            assert client.get("/metrics", headers=wrong).status_code == 401
            right = {"authorization": "Bearer scrape-me"}
            assert client.get("/metrics", headers=right).status_code == 200
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_database_figures_are_reused_within_the_cache_time(app_client: TestClient) -> None:
    from api.routes import meta

    first = meta._database_metrics(60)
    assert meta._database_metrics(60) is first  # one set of queries per METRICS_CACHE_SECONDS
