"""The admin API in process: every client's jobs, history, retry, cancel, replay, stats."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from models.base import utcnow
from models.db import session_scope
from models.job import Job, JobStatus
from models.lifecycle import fail, transition
from models.webhook import WebhookDelivery
from tests.unit.conftest import new_client_key

ADMIN = {"authorization": "Bearer test-admin-token"}


@pytest.fixture
def two_clients(app_client: TestClient) -> tuple[dict[str, str], dict[str, str]]:
    return (
        {"authorization": f"Bearer {new_client_key()}"},
        {"authorization": f"Bearer {new_client_key()}"},
    )


def create(client: TestClient, headers: dict[str, str], **body: object) -> dict[str, object]:
    response = client.post("/jobs", json={"prompt": "x", **body}, headers=headers)
    assert response.status_code == 202, response.text
    return dict(response.json())


def test_only_the_admin_token_opens_the_admin_api(
    app_client: TestClient, two_clients: tuple[dict[str, str], dict[str, str]]
) -> None:
    client_key, _ = two_clients
    for headers in ({}, client_key, {"authorization": "Bearer wrong"}):
        response = app_client.get("/admin/jobs", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    assert app_client.get("/admin/jobs", headers=ADMIN).status_code == 200


def test_admin_sees_every_client_and_filters(
    app_client: TestClient, two_clients: tuple[dict[str, str], dict[str, str]]
) -> None:
    a, b = two_clients
    ja = create(app_client, a, prompt="a lighthouse in a storm")
    jb = create(app_client, b, prompt="a quiet forest", model="kling-2.6/text-to-video")
    listed = app_client.get("/admin/jobs", params={"limit": 200}, headers=ADMIN).json()["data"]
    ids = [job["id"] for job in listed]
    assert ja["id"] in ids
    assert jb["id"] in ids
    assert ids.index(jb["id"]) < ids.index(ja["id"])  # newest first

    def ids_for(**params: object) -> list[str]:
        response = app_client.get("/admin/jobs", params=params, headers=ADMIN)
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()["data"]]

    assert ids_for(q="lighthouse") == [ja["id"]]
    assert ids_for(q="LIGHTHOUSE in") == [ja["id"]]  # case-insensitive substring
    assert ids_for(q=ja["id"]) == [ja["id"]]
    assert ids_for(q="100%_") == []  # LIKE wildcards are literal
    assert jb["id"] in ids_for(model="kling-2.6/text-to-video")
    assert ja["id"] not in ids_for(model="kling-2.6/text-to-video")
    client_b = next(j for j in listed if j["id"] == jb["id"])["client"]
    assert set(ids_for(client=client_b)) == {jb["id"]}
    assert ja["id"] in ids_for(status=["queued", "failed"])
    assert ja["id"] not in ids_for(status=["failed"])
    after = (utcnow() + timedelta(minutes=1)).isoformat()
    assert ids_for(created_after=after) == []


def test_paging_stays_correct_while_new_jobs_arrive(
    app_client: TestClient, two_clients: tuple[dict[str, str], dict[str, str]]
) -> None:
    a, _ = two_clients
    for i in range(6):
        create(app_client, a, prompt=f"page {i}")
    first = app_client.get("/admin/jobs", params={"limit": 3}, headers=ADMIN).json()
    for i in range(3):
        create(app_client, a, prompt=f"newcomer {i}")  # arrive on top, after page one was read
    second = app_client.get(
        "/admin/jobs", params={"limit": 3, "cursor": first["next_cursor"]}, headers=ADMIN
    ).json()
    seen = [j["id"] for j in first["data"]] + [j["id"] for j in second["data"]]
    assert len(set(seen)) == 6
    assert not any(j["input"]["prompt"].startswith("newcomer") for j in second["data"])


def _fail(job_id: str) -> None:
    with session_scope() as session:
        transition(session, job_id, JobStatus.QUEUED, JobStatus.SUBMITTING, reason="test")
        transition(
            session,
            job_id,
            JobStatus.SUBMITTING,
            JobStatus.WAITING,
            kie_task_id=f"task_{job_id}",
            reason="Kie accepted the task",
        )
        fail(session, job_id, JobStatus.WAITING, "kie_task_failed", "flagged")
        session.commit()


def test_retry_gives_a_failed_job_a_fresh_attempt_and_keeps_its_history(
    app_client: TestClient, two_clients: tuple[dict[str, str], dict[str, str]]
) -> None:
    a, _ = two_clients
    job = create(app_client, a)
    refused = app_client.post(f"/admin/jobs/{job['id']}/retry", headers=ADMIN)
    assert refused.status_code == 409  # only failed jobs
    _fail(str(job["id"]))
    retried = app_client.post(f"/admin/jobs/{job['id']}/retry", headers=ADMIN)
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "queued"
    assert retried.json()["kie_task_id"] is None
    assert retried.json()["error"] is None
    detail = app_client.get(f"/admin/jobs/{job['id']}", headers=ADMIN).json()
    moves = [
        (e["from_status"], e["to_status"]) for e in detail["events"] if e["kind"] == "transition"
    ]
    assert moves == [
        (None, "queued"),
        ("queued", "submitting"),
        ("submitting", "waiting"),
        ("waiting", "failed"),
        ("failed", "queued"),
    ]
    assert any(
        (e["detail"] or {}).get("kie_task_id") == f"task_{job['id']}" for e in detail["events"]
    )
    assert "retried by an operator" in detail["events"][-1]["reason"]


def test_admin_cancel_and_webhook_replay(
    app_client: TestClient, two_clients: tuple[dict[str, str], dict[str, str]]
) -> None:
    a, _ = two_clients
    job = create(app_client, a)
    canceled = app_client.post(f"/admin/jobs/{job['id']}/cancel", headers=ADMIN)
    assert canceled.json()["status"] == "canceled"
    with session_scope() as session:
        delivery = WebhookDelivery(
            job_id=str(job["id"]),
            event_type="job.canceled",
            url="https://example.com/hook",
            state="failed",
            attempts=8,
            next_attempt_at=None,
            created_at=utcnow(),
        )
        session.add(delivery)
        session.commit()
        delivery_id = delivery.id
    replayed = app_client.post(f"/admin/webhooks/{delivery_id}/replay", headers=ADMIN)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["state"] == "pending"
    assert replayed.json()["attempts"] == 0
    assert (
        app_client.post("/admin/webhooks/msg_" + "0" * 24 + "/replay", headers=ADMIN).status_code
        == 404
    )


def test_stats(app_client: TestClient, two_clients: tuple[dict[str, str], dict[str, str]]) -> None:
    a, _ = two_clients
    job = create(app_client, a, prompt="for stats")
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.id == job["id"])
            .values(
                status="succeeded",
                submitted_at=utcnow() - timedelta(seconds=42),
                finished_at=utcnow(),
                next_check_at=None,
            )
        )
        session.commit()
    stats = app_client.get("/admin/stats", params={"window": "1h"}, headers=ADMIN).json()
    assert stats["window_seconds"] == 3600
    assert stats["counts"]["succeeded"]["veo3.1-fast/text-to-video"] >= 1
    assert 0 < stats["success_rate"] <= 1
    assert stats["generation_seconds_p50"] is not None
    assert "queued" in stats["queue_depth"]
    assert (
        app_client.get("/admin/stats", params={"window": "soon"}, headers=ADMIN).status_code == 422
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"window": "999999d"}, "window"),
        ({"window": "367d"}, "window"),
    ],
)
def test_stats_refuses_a_window_it_cannot_mean(
    app_client: TestClient, params: dict[str, str], field: str
) -> None:
    response = app_client.get("/admin/stats", params=params, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == field


@pytest.mark.parametrize("field", ["created_after", "created_before"])
def test_listing_refuses_dates_out_of_any_jobs_range(app_client: TestClient, field: str) -> None:
    response = app_client.get("/admin/jobs", params={field: "0001-01-01T00:00:00"}, headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == field


def test_redirects_never_use_the_request_host(app_client: TestClient) -> None:
    response = app_client.post(
        "/admin/login",
        data={"token": "test-admin-token"},
        headers={"host": "evil.example"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/admin"  # relative: no host taken from the request
