from __future__ import annotations

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
