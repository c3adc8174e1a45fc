"""Kie's signed callbacks in process: fresh, for this job's own task, or refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.config import get_settings
from core.logs import RedactTokens
from models.base import utcnow
from models.db import session_scope
from models.job import Job, JobStatus

KEY = "kie-hmac-key"


@pytest.fixture
def signed_app(migrated: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("KIE_WEBHOOK_HMAC_KEY", KEY)
    monkeypatch.setenv("CALLBACK_DEBOUNCE", "0")
    get_settings.cache_clear()
    try:
        with TestClient(create_app()) as client:
            yield client
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def job_at_kie(task_id: str | None, status: JobStatus = JobStatus.GENERATING) -> str:
    now = utcnow()
    with session_scope() as session:
        job = Job(
            model="kling-2.6/text-to-video",
            input={"prompt": "x"},
            status=status,
            kie_task_id=task_id,
            created_at=now,
            updated_at=now,
            next_check_at=now,
        )
        session.add(job)
        session.commit()
        return job.callback_token


def signed(task_id: str, at: float) -> dict[str, str]:
    timestamp = str(int(at))
    digest = hmac.new(KEY.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return {
        "x-webhook-timestamp": timestamp,
        "x-webhook-signature": base64.b64encode(digest).decode(),
    }


def test_a_fresh_signature_for_the_jobs_own_task_is_accepted(signed_app: TestClient) -> None:
    token = job_at_kie("task-own")
    body = {"code": 200, "data": {"taskId": "task-own"}}
    response = signed_app.post(
        f"/kie/callback/{token}", json=body, headers=signed("task-own", time.time())
    )
    assert response.status_code == 200


def test_a_replayed_signature_is_refused(signed_app: TestClient) -> None:
    token = job_at_kie("task-old")
    body = {"data": {"taskId": "task-old"}}
    old = signed("task-old", time.time() - 301)
    assert signed_app.post(f"/kie/callback/{token}", json=body, headers=old).status_code == 401
    future = signed("task-old", time.time() + 301)
    assert signed_app.post(f"/kie/callback/{token}", json=body, headers=future).status_code == 401


def test_a_valid_signature_for_another_task_is_refused(signed_app: TestClient) -> None:
    token = job_at_kie("task-mine")
    body = {"data": {"taskId": "task-someone-elses"}}
    headers = signed("task-someone-elses", time.time())
    assert signed_app.post(f"/kie/callback/{token}", json=body, headers=headers).status_code == 401


def test_before_its_task_id_is_known_only_a_submitting_job_takes_a_callback(
    signed_app: TestClient,
) -> None:
    body = {"data": {"taskId": "task-new"}}
    headers = signed("task-new", time.time())
    submitting = job_at_kie(None, JobStatus.SUBMITTING)
    assert (
        signed_app.post(f"/kie/callback/{submitting}", json=body, headers=headers).status_code
        == 200
    )
    queued = job_at_kie(None, JobStatus.QUEUED)
    assert signed_app.post(f"/kie/callback/{queued}", json=body, headers=headers).status_code == 401


def test_callback_tokens_never_reach_a_log_line() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "POST", "/kie/callback/SECRETTOKEN123", "1.1", 200),
        None,
    )
    RedactTokens().filter(record)
    assert "SECRETTOKEN123" not in record.getMessage()
    assert "/kie/callback/[redacted]" in record.getMessage()


def test_a_callbacks_credits_settle_the_job_and_the_balance_hostile_ones_do_not(
    signed_app: TestClient,
) -> None:
    from sqlalchemy import select

    from models.scheduler import SchedulerState

    task = f"task-credits-{time.time_ns()}"
    token = job_at_kie(task)
    with session_scope() as session:
        if session.get(SchedulerState, "kie") is None:
            session.add(SchedulerState(name="kie", creates=[], checks=[]))
            session.commit()

    def post(data: dict[str, object]) -> None:
        body = {"code": 200, "data": {"taskId": task, **data}}
        response = signed_app.post(
            f"/kie/callback/{token}", json=body, headers=signed(task, time.time())
        )
        assert response.status_code == 200

    def stored() -> tuple[object, object, object]:
        with session_scope() as session:
            job = session.scalars(select(Job).where(Job.callback_token == token)).one()
            state = session.get(SchedulerState, "kie")
            assert state is not None
            return job.credits_reported, job.credits_reserved, state.kie_credits

    # Kie's figure is the job's charge and what holds against its budget; the balance follows.
    post({"consumeCredits": 37, "remainedCredits": "900.5"})
    assert stored() == (37.0, 37.0, 900.5)
    # Figures no account could have are not believed: nothing changes.
    for hostile in (
        {"consumeCredits": -5},
        {"consumeCredits": "NaN"},
        {"remainedCredits": 1e30},
        {"consumeCredits": True},
        {"remainedCredits": "9" * 400},
    ):
        post(hostile)
        assert stored() == (37.0, 37.0, 900.5), hostile


def test_a_deeply_nested_callback_body_is_a_400_not_a_500(signed_app: TestClient) -> None:
    token = job_at_kie("task-deep")
    response = signed_app.post(
        f"/kie/callback/{token}",
        content=b"[" * 20000,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "the callback body nests too deeply"
